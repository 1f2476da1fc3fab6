"""The hand-written ``octim/_core.pyi`` matches the compiled extension."""

from __future__ import annotations

import subprocess
import sys


def test_stub_matches_extension() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "octim._core"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
