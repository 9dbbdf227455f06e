"""The student environment is pinned, and Binder/conda get exactly the same pins as the pip setup."""
import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, version

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from coursekit.testing import COURSE_ROOT, PIN, pins


def requirement_lines():
    return [l for l in (COURSE_ROOT / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_every_requirement_is_pinned_to_one_version():
    unpinned = [l for l in requirement_lines() if not PIN.match(l.split("#")[0].strip())]
    assert not unpinned, f"pin these with ==: {unpinned}"


def test_environment_yml_has_the_same_pins_as_requirements_txt():
    text = (COURSE_ROOT / "environment.yml").read_text()
    assert pins(text.splitlines()) == pins(requirement_lines())
    assert re.search(r"^\s*- python=3\.11\s*$", text, re.M), "environment.yml pins Python 3.11"


def test_the_installed_environment_matches_the_pins():
    for name, pinned in pins(requirement_lines()).items():
        assert version(name) == pinned, f"{name} {version(name)} installed, {pinned} pinned: re-run make setup"


def declared_dependencies() -> dict[str, SpecifierSet]:
    project = tomllib.loads((COURSE_ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {canonicalize_name(Requirement(line).name): Requirement(line).specifier for line in lines}


def test_pyproject_declares_ranges_that_hold_the_pins():
    """`pip install .` alone gets working versions; `make setup-dev`'s exact pins are inside the declared ranges."""
    pinned = pins((COURSE_ROOT / "requirements.txt").read_text().splitlines()
                  + (COURSE_ROOT / "requirements-dev.txt").read_text().splitlines())
    declared = declared_dependencies()
    for name, specifier in declared.items():
        assert specifier, f"{name} has no version range in pyproject.toml"
        wanted = pinned.get(name) or version(name)  # a package nbgrader brings is not pinned: the installed one
        assert specifier.contains(wanted, prereleases=True), f"{name} {wanted} is outside pyproject's {specifier}"


def test_every_package_coursekit_imports_is_declared():
    imported = set()
    for path in (COURSE_ROOT / "coursekit").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    # psycopg2: coursekit.cluster only checks whether it is there, to say how to write a PostgreSQL URL without it
    third_party = imported - set(sys.stdlib_module_names) - {"coursekit", "psycopg2"}
    distributions = packages_distributions()
    missing = {name for name in third_party
               if not {canonicalize_name(d) for d in distributions.get(name, [name])} & set(declared_dependencies())}
    assert not missing, f"coursekit imports these, pyproject.toml does not declare them: {sorted(missing)}"
