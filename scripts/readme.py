"""Regenerate the README's settings and streams tables and test counts from the code.

The tables sit between ``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers, so they
cannot drift from ``--about`` and the stream registry; ``--check`` fails when they have.
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
from pathlib import Path

from tap_coupa.streams import registry

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    about = subprocess.run(
        [sys.executable, "-m", "tap_coupa", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = about.split("## Settings", 1)[1].strip().split("\n\n", 1)[0]
    return table.strip()


def streams_table() -> str:
    rows = [
        "| Stream | Endpoint | Primary key | Replication key | Scope |",
        "|:--|:--|:--|:--|:--|",
    ]
    for name, spec in sorted(registry().items()):
        source = f"`/api/{spec['path']}`"
        if spec["parent"]:
            keys = ", ".join(f"`{key}`" for key in [*spec["ancestor_keys"], spec["parent_key"]])
            source = f"`{spec['array_field']}` of {spec['parent']} ({keys})"
        key = spec["replication_key"] or "— (full table)"
        pk = ", ".join(spec["primary_keys"])
        rows.append(f"| {name} | {source} | {pk} | {key} | `{spec['scope']}` |")
    return "\n".join(rows)


def tests_paragraph() -> str:
    """How many tests there are, and how many of them the SDK generates."""
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=README.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ids = [line for line in collected.splitlines() if "::" in line]
    generated = [i for i in ids if i.startswith("tests/test_standard.py")]
    written = [i for i in ids if i not in set(generated)]
    functions = {i.split("[", 1)[0] for i in written}
    return (
        f"- `make test` runs {len(ids):,} tests (as `pytest --collect-only -q` counts them): "
        f"{len(written):,} hand-written ({len(functions)} test functions in `tests/`, some "
        f"parametrized) and {len(generated):,} that the Singer SDK generates in "
        "`tests/test_standard.py` (a few on the tap, six on each stream, and a type check "
        "on each property). The claims above (no lost records, exact decimals, deletes, "
        "faults, Meltano) are checked by hand-written tests."
    )


def _fill(table: str, match: re.Match[str]) -> str:
    return f"{match.group(1)}{table}\n{match.group(2)}"


def render(text: str) -> str:
    tables = {"settings": settings_table(), "streams": streams_table(), "tests": tests_paragraph()}
    for name, table in tables.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no <!-- BEGIN {name} --> / <!-- END {name} --> markers.")
        text = pattern.sub(functools.partial(_fill, table), text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    current = README.read_text()
    updated = render(current)
    if args.check:
        if updated != current:
            sys.exit("README.md tables are stale: run `python scripts/readme.py`.")
        return
    README.write_text(updated)


if __name__ == "__main__":
    main()
