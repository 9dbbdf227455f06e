"""Shared fixtures. The expensive part, autograding a class of submissions, runs once per assignment."""
import os

import pytest

from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.testing import INSTALL_HINT, SKIP_TAGS, find_browser, make_course_folder

# A cell may run this long before it is interrupted: generous for correct work on a loaded CI machine.
# (Submissions that loop, hang or kill their kernel are graded once, in tests/test_bad_submissions.py.)
CELL_TIMEOUT = 20


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
        "blank-tests-tagged-to-skip": subs.with_test_cells_tagged(blank, SKIP_TAGS),
        "malformed-json": '{"cells": [ {"cell_type": "code", ',
        "missing-notebook": None,
    }
    for number, right in enumerate(subs.right_answer_sets(assignment), start=1):  # one per exercise in each
        students[f"right-{number}"] = subs.with_answers(correct, {**answers, **right})
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
        subs.write_class(self.course, assignment, self.submitted)
        self.results = {r.student: r for r in
                        grade_assignment(self.course, assignment, config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": CELL_TIMEOUT}}))}
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


@pytest.fixture
def browser_path():
    path = find_browser()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT, pytrace=False)
        pytest.skip(f"no Chromium on this machine (CI would fail here). {INSTALL_HINT}")
    return path
