"""Allow ``python -m tap_coupa``."""

from tap_coupa.tap import TapCoupa

TapCoupa.cli()
