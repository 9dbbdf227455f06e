"""Files carried in by a submission (coursekit.submission_files): only the notebooks reach grading; a symbolic link
anywhere in a submission, or a notebook holding the master's hidden tests, is refused for that student with the
reason, while the rest of the class is graded; other files are listed as *files left out*. With `coursekit grade`
and with plain `nbgrader autograde` and the course's config."""
import json
import shutil

import nbformat

import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader import utils
from traitlets.config import Config

from coursekit import diagnosis, outcomes, scrub
from coursekit.cells import hidden_test_delimiters
from coursekit import testing as subs
from coursekit.cluster import _submission_files
from coursekit.grading import grade_assignment
from coursekit.nbgrader_cli import NbgraderFailed, nbgrader
from coursekit.outcomes import Problem, ProblemKind
from coursekit.submission_files import (CarryNbgraderFiles, CheckSubmittedFiles, SubmissionRefused,
                                        carry_nbgrader_files, course_ignore, extra_files, symbolic_links)

ASSIGNMENT = "01-async-database"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


# ---------------------------------------------------------------------------------------------------------------
# Units: no kernel


def submission(tmp_path, student="ada"):
    folder = tmp_path / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / NOTEBOOK).write_text("{}")
    return folder


def test_links_anywhere_are_found_and_other_files_listed(tmp_path):
    folder = submission(tmp_path)
    (folder / "data.csv").write_text("a\n")
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00")  # nbgrader's own
    (folder / "lib").mkdir()
    (folder / "lib" / "helper.py").write_text("x = 1\n")
    assert symbolic_links(folder) == []
    assert extra_files(folder, {NOTEBOOK}) == ["data.csv", "lib/helper.py"]
    (folder / "lib" / "master.ipynb").symlink_to("/course/source/a/a.ipynb")
    (folder / "up").symlink_to(tmp_path)
    assert symbolic_links(folder) == ["lib/master.ipynb -> /course/source/a/a.ipynb", f"up -> {tmp_path}"]


def test_an_assignment_folder_that_is_a_link_is_found(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "submitted" / "bob").mkdir(parents=True)
    (tmp_path / "submitted" / "bob" / ASSIGNMENT).symlink_to(tmp_path / "elsewhere")
    assert symbolic_links(tmp_path / "submitted" / "bob" / ASSIGNMENT)[0].startswith(f"{ASSIGNMENT}/ (the folder itself)")
    problem = diagnosis.check_submission(tmp_path, ASSIGNMENT, "bob")
    assert problem.kind is ProblemKind.REFUSED and "symbolic link" in problem.detail


def test_the_course_ignore_list_stops_nbgrader_copying_other_files_but_not_the_exchange_s_notebooks(tmp_path):
    """nbgrader's own functions, as autograde and the exchange call them, with the course's ignore list."""
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    ignore = course_ignore(tmp_path)
    assert ignore[-1] == ASSIGNMENT and ".ipynb_checkpoints" in ignore
    folder = submission(tmp_path)
    (folder / "helper.py").write_text("x = 1\n")
    (folder / "master.ipynb.txt").symlink_to(folder / NOTEBOOK)
    assert utils.find_all_files(str(folder), ignore + ["*.ipynb"]) == []  # autograde copies nothing else
    assert len(utils.find_all_files(str(folder), list(ignore[:-1]) + ["*.ipynb"])) == 2  # nbgrader's default: both
    # the exchange (release, submit, collect) copies a folder's contents: the notebook is not ignored
    assert utils.ignore_patterns(exclude=ignore)(str(folder), [NOTEBOOK, "helper.py"]) == []


def checked(folder, nb, config_root, resources=None):
    """The problems CheckSubmittedFiles reported into the notebook's resources (also kept there if it raises)."""
    config = Config()
    config.CourseDirectory.root = str(config_root)
    if resources is None:
        resources = {}
    resources["nbgrader"] = {"student": "ada", "assignment": ASSIGNMENT, "notebook": ASSIGNMENT}
    CheckSubmittedFiles(config=config).preprocess(nb, resources)
    return [r for r in outcomes.records(resources) if isinstance(r, Problem)]


def test_the_preprocessor_lists_other_files_once_and_refuses_links_and_hidden_tests(tmp_path):
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "source" / ASSIGNMENT / NOTEBOOK).write_text("{}")
    folder = submission(tmp_path)
    (folder / "data.csv").write_text("a\n")
    nb = new_notebook(cells=[new_code_cell("x = 1")])
    problems = checked(folder, nb, tmp_path)
    assert [(p.kind, p.detail) for p in problems] == [
        (ProblemKind.FILES_LEFT_OUT, "1 file(s) beside the notebooks were not given to grading: data.csv")]

    master_copy = new_notebook(cells=[new_code_cell("### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS")])
    with pytest.raises(SubmissionRefused, match="holds hidden tests"):
        checked(folder, master_copy, tmp_path)

    (folder / "link").symlink_to(tmp_path / "source")
    resources = {}
    with pytest.raises(SubmissionRefused, match="symbolic link") as refused:
        checked(folder, nb, tmp_path, resources)
    problem = diagnosis.from_exception(refused.value)
    assert problem.kind is ProblemKind.REFUSED and problem.detail.startswith("holds symbolic link(s)")
    assert outcomes.records(resources) == [problem], "reported in the resources before the preprocessor raised"


def test_nbgrader_s_own_files_are_carried_from_step_to_step_never_through_a_link(tmp_path):
    folder = submission(tmp_path)
    (folder / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    (tmp_path / "secret").write_text("x" * 10)
    (folder / "submission_secret.txt").symlink_to(tmp_path / "secret")
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    CarryNbgraderFiles(config=config).preprocess(new_notebook(), {"nbgrader": {"student": "ada", "assignment": ASSIGNMENT}})
    assert not (tmp_path / "feedback").exists()  # nothing in autograded/ yet
    carry_nbgrader_files(folder, tmp_path / "autograded" / "ada" / ASSIGNMENT)
    CarryNbgraderFiles(config=config).preprocess(new_notebook(), {"nbgrader": {"student": "ada", "assignment": ASSIGNMENT}})
    feedback = tmp_path / "feedback" / "ada" / ASSIGNMENT
    assert [p.name for p in feedback.iterdir()] == ["timestamp.txt"]
    assert (feedback / "timestamp.txt").read_text() == "2026-12-01 10:00:00.000000 UTC"


def test_a_dask_worker_is_sent_regular_files_only(tmp_path):
    folder = submission(tmp_path)
    (folder / "data.csv").write_text("a\n")
    (tmp_path / "secret.txt").write_text("master")
    (folder / "linked.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "linked-dir").symlink_to(tmp_path)
    assert sorted(_submission_files(tmp_path, ASSIGNMENT, "ada")) == [NOTEBOOK, "data.csv"]


# ---------------------------------------------------------------------------------------------------------------
# A class with carried-in files, graded for real


HELPER = "import sys\n\nSECRET_SOURCE = 'read through the sandbox'\n"
IMPORT_HELPER = ("try:\n    import helper\nexcept ImportError:\n    helper = None\n"
                 "print('helper module:', helper)\n")


def write_class(course):
    """Honest students, with and without files beside the notebook, and students whose submission links to source/."""
    correct = subs.correct_submission(ASSIGNMENT)
    first = next(iter(subs.autograded_exercises(correct)))
    answers = subs.solution_answers(ASSIGNMENT)
    master = course / "source" / ASSIGNMENT / NOTEBOOK
    subs.write_submission(course, "honest", ASSIGNMENT, correct)
    with_data = subs.write_submission(course, "with-data", ASSIGNMENT, correct)
    with_data.with_name("data.csv").write_text("id,email\n1,a@b\n")
    with_data.with_name("timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")  # as `nbgrader collect` leaves it
    module = subs.write_submission(course, "with-module", ASSIGNMENT,
                                   subs.with_answers(correct, {first: IMPORT_HELPER + answers[first]}))
    module.with_name("helper.py").write_text(HELPER)
    # the notebook itself is a link to the master notebook (nbgrader 0.9.6 grades the master: full marks)
    linked = course / "submitted" / "links-the-master" / ASSIGNMENT
    linked.mkdir(parents=True)
    (linked / NOTEBOOK).symlink_to(master)
    # a blank notebook, and a link to the master beside it (nbgrader 0.9.6 copies the master into autograded/)
    subs.write_submission(course, "links-beside", ASSIGNMENT, subs.blank_submission(ASSIGNMENT)).with_name(
        "notes.txt").symlink_to(master)
    # the whole assignment folder is a link to source/
    (course / "submitted" / "links-the-folder").mkdir(parents=True)
    (course / "submitted" / "links-the-folder" / ASSIGNMENT).symlink_to(course / "source" / ASSIGNMENT)
    # what `nbgrader collect` (copytree, following links) makes of a link to the master: a copy of it
    copied = course / "submitted" / "copied-master" / ASSIGNMENT
    copied.mkdir(parents=True)
    shutil.copy(master, copied / NOTEBOOK)


def autograded_files(course, student) -> list[str]:
    return sorted(p.name for p in (course / "autograded" / student / ASSIGNMENT).iterdir())


# only the notebook, and nbgrader's own timestamp.txt where there is one (release_feedback needs it)
EXPECTED_AUTOGRADED = {"honest": [NOTEBOOK], "with-data": [NOTEBOOK, "timestamp.txt"], "with-module": [NOTEBOOK]}
REFUSED = ["links-the-master", "links-beside", "links-the-folder", "copied-master"]
HONEST = ["honest", "with-data", "with-module"]


def hidden_text_in(folder) -> list[str]:
    """Files under autograded/ that hold hidden-test text (the delimiter, or a line of the hidden tests) where the
    kernel could read it or an output shows it: any file but a graded notebook, and the graded notebooks' outputs
    (their test cells hold the hidden tests, put back from the gradebook: that is nbgrader's design)."""
    secret = {line for line in scrub.secret_lines(nbformat.read(subs.COURSE_ROOT / "source" / ASSIGNMENT / NOTEBOOK,
                                                                as_version=4), *hidden_test_delimiters(), 12)}
    assert secret
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            if path.name == NOTEBOOK:
                text = json.dumps([c.get("outputs", []) for c in json.loads(text)["cells"]])
            if "BEGIN HIDDEN TESTS" in text or any(line in text for line in secret):
                found.append(str(path.relative_to(folder)))
    return found


def graded_outputs(course, student) -> str:
    graded = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    return json.dumps([c.get("outputs", []) for c in json.loads(graded.read_text())["cells"]])


@pytest.mark.slow
def test_coursekit_grade_refuses_links_and_leaves_other_files_out(tmp_path):
    course = subs.make_course_folder(tmp_path / "course", [ASSIGNMENT])
    write_class(course)
    before = subs.tree_digest(course / "submitted")
    results = {r.student: r for r in grade_assignment(course, ASSIGNMENT)}  # nbgrader_config.py's settings

    for student in HONEST:
        result = results[student]
        assert result.problem is None and result.scores == result.max_scores and result.max_score > 0, student
        assert autograded_files(course, student) == EXPECTED_AUTOGRADED[student], student
    assert results["honest"].reviews == []
    left_out = {s: [p for p in results[s].reviews if p.kind is ProblemKind.FILES_LEFT_OUT] for s in HONEST}
    assert "data.csv" in left_out["with-data"][0].detail and "helper.py" in left_out["with-module"][0].detail
    flagged = [p for p in results["with-module"].reviews if p.kind is ProblemKind.NEEDS_REVIEW]
    assert flagged and "helper.py line 1: interpreter internals (import sys)" in flagged[0].detail
    assert "helper module: None" in graded_outputs(course, "with-module"), "the notebook's import found no helper"

    for student in REFUSED:
        result = results[student]
        assert result.problem and result.problem.kind is ProblemKind.REFUSED, (student, result.problem)
        assert set(result.scores.values()) <= {0.0}, (student, result.scores)
    assert "symbolic link" in results["links-the-master"].problem.detail
    assert f"{NOTEBOOK} -> {course / 'source' / ASSIGNMENT / NOTEBOOK}" in results["links-the-master"].problem.detail
    assert "hidden tests" in results["copied-master"].problem.detail
    for student in REFUSED:
        assert not (course / "autograded" / student / ASSIGNMENT).exists(), student
    assert hidden_text_in(course / "autograded") == []
    assert subs.tree_digest(course / "submitted") == before


@pytest.mark.slow
def test_plain_nbgrader_autograde_refuses_links_and_leaves_other_files_out(tmp_path):
    from nbgrader.api import Gradebook, MissingEntry

    course = subs.make_course_folder(tmp_path / "course", [ASSIGNMENT])
    write_class(course)
    with pytest.raises(NbgraderFailed) as failed:  # nbgrader exits with 1 when it could not grade someone
        nbgrader(course, "autograde", ASSIGNMENT)
    log = failed.value.process.stderr
    for student in REFUSED:
        assert f"submission of {student} refused:" in log, student
    assert "files left out: 1 file(s) beside the notebooks were not given to grading: helper.py" in log
    assert "needs review: cell(s) helper.py" in log
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "fastapi-async-db") as gradebook:
        for student in HONEST:
            submission = gradebook.find_submission(ASSIGNMENT, student)
            assert submission.score == submission.max_score > 0, (student, log[-4000:])
        for student in REFUSED:
            try:
                assert gradebook.find_submission(ASSIGNMENT, student).score == 0, student
            except MissingEntry:
                pass
    for student in HONEST:
        assert autograded_files(course, student) == EXPECTED_AUTOGRADED[student], student
    for student in REFUSED:
        assert not (course / "autograded" / student / ASSIGNMENT).exists(), student
    assert hidden_text_in(course / "autograded") == []
