"""release/ and solutions/ are generated from source/ by `make build` and committed: they must never drift,
never be edited by hand, and the student version must never show a solution or a hidden test."""
import json
import shutil
import subprocess
import sys

import pytest

from coursekit import assignments
from coursekit.testing import COURSE_ROOT
from coursekit.build import build
from coursekit.cells import secret_lines
from coursekit.testing import read_notebook

ASSIGNMENTS = assignments(COURSE_ROOT)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """The generated folders as `make build` makes them now, from the committed source/."""
    course = tmp_path_factory.mktemp("rebuilt")
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", course)
    shutil.copytree(COURSE_ROOT / "source", course / "source")
    build(course)
    return course


def comparable(notebook: dict) -> list:
    """What a solution notebook says, without what executing it produced (nbval checks the outputs)."""
    return [(c["cell_type"], c["source"], c.get("metadata", {}).get("nbgrader")) for c in notebook["cells"]]


@pytest.mark.slow  # rebuilds release/ and solutions/ (runs the notebooks)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_exactly_what_the_build_makes(rebuilt, assignment):
    for made in (rebuilt / "release" / assignment).iterdir():
        committed = COURSE_ROOT / "release" / assignment / made.name
        assert committed.exists(), f"release/{assignment}/{made.name} is not committed: run `make build`"
        assert committed.read_bytes() == made.read_bytes(), (
            f"release/{assignment}/{made.name} differs from source/: run `make build` (never edit release/ by hand)")


@pytest.mark.slow  # rebuilds release/ and solutions/ (runs the notebooks)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_are_what_the_build_makes(rebuilt, assignment):
    name = f"{assignment}.ipynb"
    made = read_notebook(rebuilt / "solutions" / assignment / name)
    committed = read_notebook(COURSE_ROOT / "solutions" / assignment / name)
    assert comparable(committed) == comparable(made), (
        f"solutions/{assignment}/{name} differs from source/: run `make build`")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebooks_ran_cleanly(assignment):
    """Every code cell of the committed solution ran, without an error or anything on stderr."""
    notebook = read_notebook(COURSE_ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert cell["execution_count"], f"cell {cell['id']} was not executed"
        for output in cell["outputs"]:
            assert output["output_type"] != "error", f"cell {cell['id']} raised {output.get('ename')}"
            assert output.get("name") != "stderr", f"cell {cell['id']} wrote to stderr: {output.get('text')}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_student_version_shows_no_solution_and_no_hidden_test(assignment):
    source = read_notebook(COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb")
    release_text = (COURSE_ROOT / "release" / assignment / f"{assignment}.ipynb").read_text()
    release = json.loads(release_text)
    shown = {line.strip() for c in release["cells"] for line in "".join(c["source"]).splitlines()}
    secret, _ = secret_lines("".join(c["source"]) for c in source["cells"])
    assert secret, "source has no solution or hidden test block"
    leaked = secret & shown
    assert not leaked, f"release shows lines of solutions or hidden tests: {sorted(leaked)[:5]}"
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in release_text


def validate(notebook_path) -> str:
    process = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(notebook_path)],
                             capture_output=True, text=True, timeout=300, cwd=notebook_path.parent)
    return process.stdout + process.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.slow
def test_nbgrader_validate_passes_the_solution_and_fails_the_blank_release(tmp_path, assignment):
    name = f"{assignment}.ipynb"
    shutil.copy(COURSE_ROOT / "solutions" / assignment / name, tmp_path / "solution.ipynb")
    shutil.copy(COURSE_ROOT / "release" / assignment / name, tmp_path / "blank.ipynb")
    assert "Success! Your notebook passes all the tests." in validate(tmp_path / "solution.ipynb")
    blank = validate(tmp_path / "blank.ipynb")
    assert "VALIDATION FAILED" in blank and "NotImplementedError" in blank
