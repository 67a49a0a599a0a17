"""Singer tap for Coupa, built on the Meltano Singer SDK."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-coupa")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
