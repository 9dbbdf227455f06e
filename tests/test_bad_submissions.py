"""No submission, however broken, stops `coursekit grade`: the run finishes, every other student is graded, the
broken one is reported with a clear reason, and nothing submitted is modified or lost.

One class of Section 1 holds the cases of issue 6, graded once by two workers. Cases that change the notebook's
structure without breaking it share a student two by two (each case is still checked on its own), to keep the
suite short: every full notebook graded costs about 10 s.
"""
import json

import pytest
from traitlets.config import Config

from coursekit import testing as subs
from coursekit.diagnosis import describe_changes
from coursekit.grading import grade_assignment
from coursekit.outcomes import ChangeKind, ProblemKind
from coursekit.testing import make_course_folder

pytestmark = pytest.mark.slow  # runs kernels / nbgrader: skipped by `-m "not slow"`

ASSIGNMENT = "01-async-database"
CELL_TIMEOUT = 10  # the looping cell costs this; the slowest correct cell of Section 1 takes under 3 s


def class_with_every_bad_case() -> dict[str, dict | str | None]:
    correct, blank = subs.correct_submission(ASSIGNMENT), subs.blank_submission(ASSIGNMENT)
    answer = next(iter(subs.autograded_exercises(blank)))  # the first exercise's answer cell
    return {
        "correct": correct,
        "loops-forever": subs.with_answers(correct, {answer: "while True:\n    pass\n"}),
        "hangs-in-await": subs.with_answers(correct, {answer: "import asyncio\nawait asyncio.Event().wait()\n"}),
        "calls-exit": subs.with_answers(correct, {answer: "exit()\n"}),
        "calls-quit": subs.with_answers(correct, {answer: "quit()\n"}),
        "calls-os-exit": subs.with_answers(correct, {answer: "import os\nos._exit(1)\n"}),
        # 6 GB at most: without the kernel's memory limit the cell finishes (and the test fails) on a 24 GB machine.
        # 1 GB steps leave the kernel room to run the cells after it once the limit (2 GiB here) stops the loop.
        "hoards-memory": subs.with_answers(
            correct, {answer: "hoard = []\nfor _ in range(6):\n    hoard.append(bytearray(1_000_000_000))\n"}),
        "prints-gigabytes": subs.with_answers(correct, {answer: 'while True:\n    print("x" * 1_000_000)\n'}),
        "kills-its-kernel": subs.with_answers(correct, {answer: "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"}),
        # In the sandbox its parent is the sandbox's own init, which ignores the signal: nothing dies.
        "kills-the-grader": subs.with_answers(correct, {answer: "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"}),
        # deletes the first test cell, edits all the others to `pass`
        "tampers-with-tests": subs.with_test_cells_replaced(subs.with_cell_deleted(correct, subs.first_test_cell(correct))),
        # copies its first answer cell, turns the first test cell into markdown
        "restructures-cells": subs.with_cell_made_markdown(subs.with_cell_copied(correct, answer), subs.first_test_cell(correct)),
        "invalid-json": '{"cells": [{"cell_type": "code", "source": "print(1)"',
        "empty-folder": None,
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course_folder(tmp_path_factory.mktemp("bad-submissions"), [ASSIGNMENT])
    # A 2 GiB limit (the course's is 4 GiB): the hoarding cell stops after touching 1 GB instead of 3 GB, which
    # took longer than CELL_TIMEOUT on a loaded machine (a timeout instead of "out of memory").
    with (course / "nbgrader_config.py").open("a") as config:
        config.write("\nc.SandboxProvisioner.memory_limit = 2 * 1024**3\n")
    submitted = class_with_every_bad_case()
    subs.write_class(course, ASSIGNMENT, submitted)
    before = subs.tree_digest(course / "submitted")
    # "never-submitted" has no folder at all: a student on the roster who handed in nothing.
    students = [*submitted, "never-submitted"]
    results = {r.student: r for r in grade_assignment(course, ASSIGNMENT, students=students,
                                                      config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": CELL_TIMEOUT}}))}
    return course, submitted, before, results


EXPECTED_PROBLEM = {
    "loops-forever": ProblemKind.TIMED_OUT,
    "hangs-in-await": ProblemKind.TIMED_OUT,
    "calls-exit": ProblemKind.KERNEL_DIED,
    "calls-quit": ProblemKind.KERNEL_DIED,
    "calls-os-exit": ProblemKind.KERNEL_DIED,
    "hoards-memory": ProblemKind.OUT_OF_MEMORY,
    "prints-gigabytes": ProblemKind.TOO_MUCH_OUTPUT,
    "kills-its-kernel": ProblemKind.KERNEL_DIED,
    "invalid-json": ProblemKind.NOT_A_NOTEBOOK,
    "empty-folder": ProblemKind.MISSING,
    "never-submitted": ProblemKind.MISSING,
}


def test_the_run_finishes_and_grades_every_other_student(graded):
    course, submitted, _, results = graded
    assert set(results) == {*submitted, "never-submitted"}
    correct = results["correct"]
    assert correct.problem is None and correct.max_score > 0 and correct.scores == correct.max_scores


@pytest.mark.parametrize("student", EXPECTED_PROBLEM)
def test_a_broken_submission_is_reported_with_its_reason(graded, student):
    result = graded[3][student]
    assert result.problem and result.problem.kind is EXPECTED_PROBLEM[student], result.problem


def test_a_kernel_cannot_kill_the_grader(graded):
    """Its parent process is the sandbox's init, not the grader: the signal is lost and grading goes on."""
    result = graded[3]["kills-the-grader"]
    assert result.problem is None, result.problem
    assert 0 < result.score < result.max_score, "only the answer that tried it lost its points"


def test_output_without_end_is_cut_not_kept(graded):
    course, _, _, results = graded
    graded_notebook = course / "autograded" / "prints-gigabytes" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert graded_notebook.stat().st_size < 2_000_000, "the grader kept the flood of output"
    flooded = results["prints-gigabytes"]
    assert "printed more than 1 MB" in str(flooded.problem)
    # the answer that printed lost its points; everything after it was graded normally
    assert 0 < flooded.score < flooded.max_score


@pytest.mark.parametrize("student,kind,words", [
    ("tampers-with-tests", ChangeKind.DELETED, "deleted, put back"),
    ("tampers-with-tests", ChangeKind.EDITED, "edited, put back"),
    ("restructures-cells", ChangeKind.COPIED, "appears 2 times"),
    ("restructures-cells", ChangeKind.RETYPED, "turned from code into markdown"),
], ids=["deletes-test-cells", "edits-test-cells", "duplicates-cells", "changes-cell-types"])
def test_a_changed_notebook_is_graded_as_released_and_the_change_reported(graded, student, kind, words):
    result = graded[3][student]
    assert result.problem is None, result.problem
    assert kind in {c.kind for c in result.changes}, result.changes
    assert any(words in line for line in describe_changes(result.changes)), result.changes
    assert result.scores == result.max_scores, "correct answers keep their points once the notebook is put right"
    # (a blank notebook with its tests edited to pass still earns 0: tests/test_grading.py, every assignment)


def test_a_kernel_that_hoards_memory_hits_its_limit_and_the_rest_is_graded(graded):
    hoarder = graded[3]["hoards-memory"]
    assert "MemoryError" in str(hoarder.problem)
    assert 0 < hoarder.score < hoarder.max_score, "the answer that hoarded lost its points, the others kept theirs"


def test_nothing_submitted_is_modified_or_lost(graded):
    course, submitted, before, _ = graded
    assert subs.tree_digest(course / "submitted") == before
    for student, notebook in submitted.items():
        if notebook is not None and not isinstance(notebook, str):
            on_disk = (course / "submitted" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
            assert json.loads(on_disk) == notebook
