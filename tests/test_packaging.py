"""The package builds from the git repository (as pip/pipx install it) with its data files."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import typing as t
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

pytestmark = pytest.mark.external

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict[str, t.Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_lowest_allowed_setuptools_reads_the_license_expression() -> None:
    """``license = "Apache-2.0"`` (PEP 639) needs setuptools 77: 69 to 76 refuse it.

    Their error ("`project.license` must be valid exactly by one definition") stops a
    build with an older setuptools the build-system table allowed, e.g. ``pip install
    --no-build-isolation`` where setuptools 69.5 is installed.
    """
    project = pyproject()
    if not isinstance(project["project"].get("license"), str):
        return
    requires = [Requirement(r) for r in project["build-system"]["requires"]]
    [setuptools] = [r for r in requires if r.name == "setuptools"]
    lowest = [Version(s.version) for s in setuptools.specifier if s.operator in {">=", "~=", "=="}]
    assert lowest, f"{setuptools} allows any setuptools"
    assert max(lowest) >= Version("77"), f"{setuptools} allows a setuptools without PEP 639"


def test_wheel_from_git_and_sdist(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheel_dir),
            f"git+file://{ROOT}",
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("tap_coupa-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "tap_coupa/schemas/streams.json" in names
    assert "tap_coupa/schemas/invoices.json" in names
    assert "coupa_sandbox/server.py" in names
    assert "coupa_sandbox/resources.json" in names  # the sandbox needs no R39 files
    assert "tap-coupa = tap_coupa.__main__:main" in scripts
    assert "coupa-sandbox = coupa_sandbox.__main__:main" in scripts

    sdist_dir = tmp_path / "sdist"
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(sdist_dir), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (sdist,) = sdist_dir.glob("tap_coupa-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "README.md",
        "tap_coupa/schemas/streams.json",
        "coupa_sandbox/resources.json",
    } <= members


def test_readme_tables_and_counts_are_current() -> None:
    """The README's settings and streams tables and test counts match the code."""
    done = subprocess.run(
        [sys.executable, "scripts/readme.py", "--check"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
