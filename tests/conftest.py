"""Shared fixtures. The expensive part, autograding a class of submissions, runs once per assignment."""
import pytest

from coursekit import COURSE_ROOT, assignments
from coursekit import submissions as subs
from coursekit.grading import grade_assignment, make_course_folder

ASSIGNMENTS = assignments()

# A cell may run this long before it is interrupted. Generous for correct work on a loaded CI machine;
# short enough that the submissions that loop or hang on purpose do not slow the suite too much.
CELL_TIMEOUT = 20

# Submissions that must not stop a grading run: student name -> (what it does, how to make it).
BROKEN = {
    "loops-forever": "while True:\n    pass\n",
    "hangs-in-await": "import asyncio\nawait asyncio.Event().wait()\n",
    "calls-exit": "exit()\n",
    "calls-quit": "quit()\n",
    "calls-os-exit": "import os\nos._exit(1)\n",
}


def first_answer(assignment: str) -> str:
    release = subs.blank_submission(assignment)
    return next(subs.nbgrader_meta(c)["grade_id"] for c in release["cells"] if subs.is_answer(c) and c["cell_type"] == "code")


def class_of_submissions(assignment: str) -> dict[str, dict | str | None]:
    """Every kind of submission the tests look at: student name -> notebook (or raw text; None = missing)."""
    correct = subs.correct_submission(assignment)
    blank = subs.blank_submission(assignment)
    answers = subs.solution_answers(assignment)
    students: dict[str, dict | str | None] = {
        "correct": correct,
        "blank": blank,
        "blank-tests-edited-to-pass": subs.with_test_cells_replaced(blank, "pass"),
        "blank-tests-deleted": subs.with_test_cells_deleted(blank),
        "correct-tests-edited-to-pass": subs.with_test_cells_replaced(correct, "pass"),
        "correct-tests-deleted": subs.with_test_cells_deleted(correct),
        "malformed-json": '{"cells": [ {"cell_type": "code", ',
        "missing-notebook": None,
    }
    for name, code in BROKEN.items():
        students[name] = subs.with_answers(correct, {first_answer(assignment): code})
    for exercise, mistakes in subs.wrong_answers(assignment).items():
        for number, source in enumerate(mistakes.values(), start=1):
            students[f"wrong-{exercise}-{number}"] = subs.with_answers(correct, {**answers, exercise: source})
    return students


class GradedClass:
    """One assignment's class of submissions, autograded once, results looked up by student name."""

    def __init__(self, assignment: str, tmp_path_factory):
        self.assignment = assignment
        self.course = make_course_folder(tmp_path_factory.mktemp(assignment), [assignment])
        self.submitted = class_of_submissions(assignment)
        for student, notebook in self.submitted.items():
            if notebook is None:  # a student folder without the notebook in it
                (self.course / "submitted" / student / assignment).mkdir(parents=True)
            else:
                subs.write_submission(self.course, student, assignment, notebook)
        self.results = {r.student: r for r in
                        grade_assignment(self.course, assignment, jobs=2, cell_timeout=CELL_TIMEOUT)}
        self.exercises = subs.autograded_exercises(subs.blank_submission(assignment))

    def __getitem__(self, student):
        return self.results[student]


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    """graded_class(assignment) -> GradedClass; each assignment is graded at most once per test session."""
    cache = {}

    def get(assignment):
        if assignment not in cache:
            cache[assignment] = GradedClass(assignment, tmp_path_factory)
        return cache[assignment]

    return get
