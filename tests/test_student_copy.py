"""`python -m coursekit student-copy DEST` exports what students receive, to be pushed as the public student
repository: the release notebooks, the start page, the environment, a student README with Binder links. No
solution, no hidden test, no grading metadata beyond nbgrader's own student metadata and no gradebook reach it.
"""
import json
import shutil

import pytest

from coursekit import assignments
from coursekit.testing import COURSE_ROOT
from coursekit.__main__ import main
from coursekit.cells import read, secret_lines
from coursekit.student_copy import LeakError, export_student_copy
from traitlets.config import Config

ASSIGNMENTS = assignments(COURSE_ROOT)
REPO = "acme/fastapi-course"
# nbgrader's cell metadata schema (version 3): what the student notebooks need for locks, grades and Validate.
NBGRADER_STUDENT_METADATA = {"grade", "grade_id", "locked", "points", "schema_version", "solution", "task",
                             "checksum", "cell_type"}


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    dest = tmp_path_factory.mktemp("student-copy") / "repo"
    assert main(["student-copy", str(dest), f"--repo={REPO}", f"--course={COURSE_ROOT}"]) == 0
    return dest


def files_in(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts}


def source_blocks():
    """(secret lines, public text) of source/: every line of a solution or hidden-test block that appears nowhere
    outside those blocks, and everything outside them."""
    return secret_lines(cell.source for notebook in sorted((COURSE_ROOT / "source").glob("*/*.ipynb"))
                        for cell in read(notebook).cells)


def test_it_holds_what_students_receive_and_nothing_else(student_copy):
    expected = {"README.md", "Makefile", "nbgrader_config.py", ".gitignore", ".student-copy", "requirements.txt",
                "environment.yml", "notebooks/start.ipynb"}
    expected |= {f"release/{a}/{p.name}" for a in ASSIGNMENTS for p in (COURSE_ROOT / "release" / a).iterdir()}
    expected |= {p.relative_to(COURSE_ROOT).as_posix() for p in (COURSE_ROOT / "jupyter-student").rglob("*")
                 if p.is_file()} if (COURSE_ROOT / "jupyter-student").is_dir() else set()
    expected |= {"start"} if (COURSE_ROOT / "start").exists() else set()
    assert files_in(student_copy) == expected
    for name in ("requirements.txt", "environment.yml"):
        assert (student_copy / name).read_text() == (COURSE_ROOT / name).read_text()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_student_notebooks_are_the_release_notebooks(student_copy, assignment):
    name = f"release/{assignment}/{assignment}.ipynb"
    cells = lambda nb: [(c["cell_type"], "".join(c["source"]), c["metadata"].get("nbgrader")) for c in nb["cells"]]
    assert cells(json.loads((student_copy / name).read_text())) == cells(json.loads((COURSE_ROOT / name).read_text()))


def test_no_solution_and_no_hidden_test_of_source_reaches_it(student_copy):
    secret, public = source_blocks()
    assert secret, "source/ has no solution or hidden-test block"
    # long secret lines also count when they appear inside a longer line (an output, a traceback, prose)
    long_secret = {line for line in secret if len(line) >= 20 and line not in public}
    for name in sorted(files_in(student_copy)):
        text = (student_copy / name).read_text(encoding="utf-8")
        if name.endswith(".ipynb"):  # what the notebook shows: its cells
            shown = {line.strip() for c in json.loads(text)["cells"] for line in "".join(c["source"]).splitlines()}
        else:
            shown = {line.strip() for line in text.splitlines()}
        assert not secret & shown, f"{name} shows solution or hidden-test lines: {sorted(secret & shown)[:3]}"
        inside = [line for line in long_secret if line in text or json.dumps(line)[1:-1] in text]
        assert not inside, f"{name} contains solution or hidden-test code: {inside[:3]}"
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{name} contains {marker}"


def test_no_grading_metadata_beyond_nbgraders_student_metadata(student_copy):
    for name in sorted(n for n in files_in(student_copy) if n.endswith(".ipynb")):
        nb = json.loads((student_copy / name).read_text())
        assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, f"{name}: {set(nb['metadata'])}"
        for cell in nb["cells"]:
            assert set(cell["metadata"]) <= {"nbgrader", "deletable", "editable", "tags"}, f"{name}: {cell['metadata']}"
            assert set(cell["metadata"].get("nbgrader", {})) <= NBGRADER_STUDENT_METADATA, f"{name}: {cell['metadata']}"
            assert not cell.get("outputs"), f"{name} has outputs"


def test_no_gradebook_and_no_instructor_config(student_copy):
    for name in files_in(student_copy):
        data = (student_copy / name).read_bytes()
        assert not data.startswith(b"SQLite format 3") and not name.endswith((".db", ".sqlite")), name
        assert not name.startswith(("source/", "solutions/", "autograded/", "submitted/", "feedback/", "tests/",
                                    "coursekit/", "benchmarks/")), name
    config_text = (student_copy / "nbgrader_config.py").read_text()
    for instructor_only in ("coursekit", "db_url", "solution_directory", "Autograde", "GenerateFeedback", "Exchange"):
        assert instructor_only not in config_text
    # it is a working nbgrader config that needs nothing of the course
    student, course = Config(), Config()
    exec(config_text, {"get_config": lambda: student})
    exec(compile((COURSE_ROOT / "nbgrader_config.py").read_text(), str(COURSE_ROOT / "nbgrader_config.py"), "exec"),
         {"get_config": lambda: course, "__file__": str(COURSE_ROOT / "nbgrader_config.py")})
    for setting in ("timeout", "skip_cells_with_tag", "extra_arguments"):  # Validate runs cells as grading does
        assert student.Execute[setting] == course.Execute[setting], setting
    assert student.CourseDirectory.course_id == course.CourseDirectory.course_id


def test_the_readme_opens_every_section_on_binder(student_copy):
    readme = (student_copy / "README.md").read_text()
    assert "OWNER/REPO" not in readme
    binder = f"https://mybinder.org/v2/gh/{REPO}/main?urlpath=lab/tree/"
    assert f"{binder}notebooks/start.ipynb" in readme
    for assignment in ASSIGNMENTS:
        path = f"release/{assignment}/{assignment}.ipynb"
        assert f"{binder}{path}" in readme and (student_copy / path).exists()
    assert "make start" in readme and "Validate" in readme


def test_the_export_refuses_a_copy_that_would_leak(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    for name in ("nbgrader_config.py", "requirements.txt", "environment.yml", "notebooks", "source"):
        copy = shutil.copytree if (COURSE_ROOT / name).is_dir() else shutil.copy
        copy(COURSE_ROOT / name, course / name)
    shutil.copytree(COURSE_ROOT / "source", course / "release")  # a release made wrong: the master notebooks
    with pytest.raises(LeakError):
        export_student_copy(tmp_path / "leaky", course_root=course)


def test_a_new_export_replaces_the_previous_one_and_keeps_git(tmp_path):
    dest = tmp_path / "repo"
    export_student_copy(dest, COURSE_ROOT)
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "stale.txt").write_text("from an older course\n")
    export_student_copy(dest, COURSE_ROOT)
    assert (dest / ".git" / "HEAD").exists() and not (dest / "stale.txt").exists()
    foreign = tmp_path / "somewhere"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        export_student_copy(foreign, COURSE_ROOT)
