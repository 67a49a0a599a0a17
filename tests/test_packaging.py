"""The package builds from the git repository (as pip/pipx install it) with its data files."""

from __future__ import annotations

import ast
import subprocess
import sys
import tarfile
import typing as t
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
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


def runtime_imports(package: Path) -> dict[str, str]:
    """Top-level modules the package's files import outside ``if TYPE_CHECKING``: a file each."""
    found: dict[str, str] = {}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path.name)
    return found


def test_every_package_imported_at_runtime_is_declared() -> None:
    """A package the shipped code imports is a dependency, not another's dependency.

    httpx's transport (httpcore, whose read size http.py sets) and the SDK's retry
    library (python-backoff) were imported without being declared.
    """
    declared: set[str] = set()
    for requirement in map(Requirement, pyproject()["project"]["dependencies"]):
        declared.add(canonicalize_name(requirement.name))
        for dependency in map(Requirement, metadata.requires(requirement.name) or []):
            marker = dependency.marker  # "extra == ...": asked for by an extra named here
            if (
                marker
                and "extra" in str(marker)
                and any(marker.evaluate({"extra": extra}) for extra in requirement.extras)
            ):
                declared.add(canonicalize_name(dependency.name))
    distributions = metadata.packages_distributions()
    undeclared = {
        f"{module} ({where})": distributions.get(module, [module])
        for package in ("tap_coupa", "coupa_sandbox")
        for module, where in runtime_imports(ROOT / package).items()
        if module not in sys.stdlib_module_names and module not in {"tap_coupa", "coupa_sandbox"}
        if not {canonicalize_name(d) for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, f"imported, not in [project] dependencies: {undeclared}"


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
