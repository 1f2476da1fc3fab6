"""The hand-written ``octim/_core.pyi`` matches the compiled extension."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_stub_matches_extension() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "octim._core",
                             # the project's settings (untyped third-party modules)
                             "--mypy-config-file", str(PYPROJECT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
