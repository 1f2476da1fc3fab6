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


def test_the_extension_was_built_from_these_sources(tmp_path: Path) -> None:
    import shutil

    from octim import _core
    from octim._version import source_digest

    src = PYPROJECT.parent / "octim_core" / "src"
    assert source_digest(src) == _core.SOURCE_DIGEST  # what build.rs recorded
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    (copy / "lib.rs").write_text((copy / "lib.rs").read_text() + "\n// edited\n")
    assert source_digest(copy) != _core.SOURCE_DIGEST  # an edit is seen as stale
