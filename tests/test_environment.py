"""The student environment is pinned, and Binder/conda get exactly the same pins as the pip setup."""
import re
from importlib.metadata import version

from coursekit.testing import COURSE_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==(\S+)$")


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        match = PIN.match(line)
        if match:
            found[match.group(1).lower()] = match.group(3)
    return found


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
