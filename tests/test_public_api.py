"""The public Python API is exactly what octim/__init__.py declares."""

from __future__ import annotations

import octim


def test_public_names_are_pinned() -> None:
    assert sorted(octim.__all__) == [
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
    for name in octim.__all__:
        assert getattr(octim, name) is not None


def test_the_extension_matches_the_package() -> None:
    assert octim._core.__version__ == octim.__version__
