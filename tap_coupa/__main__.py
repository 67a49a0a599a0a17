"""The ``tap-coupa`` command, and ``python -m tap_coupa``."""

import gc
import sys

from tap_coupa import ahead, transport


def main() -> None:
    """Run the CLI with the garbage collector off from its first line.

    Importing the SDK and its dependencies builds some 90,000 objects that
    live the whole run, and each collection meanwhile rescans them: about a sixth of
    the CPU of those imports, all before the first request. ``TapCoupa.invoke`` keeps
    the collector off until records flow; here it is off before the imports too.
    """
    gc.disable()
    transport.load_ahead()  # the CA bundle loads on a thread meanwhile (see ``transport``)
    ahead.start(sys.argv[1:])  # and the token is asked for (see ``ahead``)
    from tap_coupa.tap import TapCoupa  # here: imported with the collector off

    TapCoupa.cli()


if __name__ == "__main__":
    main()
