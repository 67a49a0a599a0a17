"""Singer tap for Coupa, built on the Meltano Singer SDK."""

import importlib.resources
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tap-coupa")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

#: The stream registry (``streams.json``) and each stream's JSON Schema.
SCHEMAS = importlib.resources.files(__name__) / "schemas"
