"""The package version, and the check that the Rust extension matches it."""

from importlib.metadata import PackageNotFoundError, version

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
