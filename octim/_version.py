"""The package version, and the check that the Rust extension matches it.

Two checks: the extension's version against the package's, and, in a checkout
(where ``octim_core/src`` sits beside the package), a digest of the Rust
sources against the digest the extension was built from, so an edited crate is
never silently served by a stale build.
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from octim import _core

try:
    __version__ = version("octim")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = _core.__version__

if _core.__version__ != __version__:
    raise ImportError(
        f"octim._core is version {_core.__version__} but the octim package is "
        f"{__version__}: the compiled extension is stale. Rebuild it with "
        "`pip install -e '.[test]'` (or `maturin develop`)."
    )


def source_digest(src: Path) -> str:
    """FNV-1a (64 bits) over the crate's ``.rs`` files, as ``octim_core/build.rs`` computes it."""
    digest = 0xCBF29CE484222325
    for path in sorted(src.rglob("*.rs"), key=lambda p: p.relative_to(src).as_posix()):
        for part in (path.relative_to(src).as_posix().encode(), b"\0", path.read_bytes(), b"\0"):
            for byte in part:
                digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def _maybe_stale(src: Path) -> bool:
    """Cheap first: only sources newer than the extension can make it stale."""
    built = Path(_core.__file__ or "").stat().st_mtime if _core.__file__ else 0.0
    return any(path.stat().st_mtime > built for path in src.rglob("*.rs"))


_SOURCES = Path(__file__).resolve().parent.parent / "octim_core" / "src"
if _SOURCES.is_dir() and _maybe_stale(_SOURCES) and \
        source_digest(_SOURCES) != _core.SOURCE_DIGEST:
    raise ImportError(
        "octim._core was built from other Rust sources than the ones in "
        f"{_SOURCES}: the compiled extension is stale. Rebuild it with "
        "`pip install -e '.[test]'` (or `maturin develop`)."
    )
