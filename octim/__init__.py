"""OctIM: a real-time customer-service chat engine for multi-merchant marketplaces.

This module is the public Python API; everything else is internal and may
change. ``tests/test_public_api.py`` pins the names below.
"""

from octim._version import __version__
from octim.auth import Principal, issue_token, verify_token
from octim.config import HostPort, Settings, load_settings
from octim.engine import Engine, Listening, open_engine
from octim.errors import OctimError

__all__ = [
    "Engine",
    "HostPort",
    "Listening",
    "OctimError",
    "Principal",
    "Settings",
    "__version__",
    "issue_token",
    "load_settings",
    "open_engine",
    "verify_token",
]
