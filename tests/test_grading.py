"""Grading is real both ways: right work earns full marks, wrong or missing work loses them, and no
submission, however broken, stops the class from being graded."""
import copy

import pytest
from traitlets.config import Config

from coursekit.testing import ASSIGNMENTS, COURSE_ROOT, SKIP_TAGS, make_course_folder
from coursekit import testing as subs
from coursekit.diagnosis import describe_changes
from coursekit.grading import grade_assignment
from coursekit.outcomes import ChangeKind, ProblemKind

WRONG = [(a, exercise, number, mistake)
         for a in ASSIGNMENTS
         for exercise, mistakes in subs.wrong_answers(a).items()
         for number, mistake in enumerate(mistakes, start=1)]


RIGHT = [(a, exercise, number, how)
         for a in ASSIGNMENTS
         for exercise, variants in subs.right_answers(a).items()
         for number, how in enumerate(variants, start=1)]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_autograded_exercise_has_tests_three_right_answers_and_four_wrong_answers(assignment):
    exercises = subs.autograded_exercises(subs.blank_submission(assignment))
    assert exercises, "no autograded exercise found"
    assert set(subs.right_answers(assignment)) <= set(exercises), "a right answer names no autograded exercise"
    for exercise, tests in exercises.items():
        assert tests, f"{exercise} has no test cell named test_{exercise}_<n>"
        assert len(subs.right_answers(assignment).get(exercise, {})) >= 3, (
            f"{exercise}: tests/right_answers/{assignment}.py needs at least three correct answers written "
            "differently from the solution")
        assert len(subs.wrong_answers(assignment).get(exercise, {})) >= 4, (
            f"{exercise}: tests/wrong_answers/{assignment}.py needs at least four realistic wrong answers")


def code_only(source: str) -> str:
    """The statements of an answer, without comments, blank lines or indentation differences."""
    import ast
    return ast.dump(ast.parse(source))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_right_and_wrong_answers_are_not_the_solution_again(assignment):
    """Each right answer is written differently from the solution (and from the others); no wrong answer is in fact
    the solution, and no two are the same code."""
    solution = subs.solution_answers(assignment)
    for kind, answers in [("right", subs.right_answers(assignment)), ("wrong", subs.wrong_answers(assignment))]:
        for exercise, variants in answers.items():
            codes = [code_only(source) for source in variants.values()]
            assert code_only(solution[exercise]) not in codes, f"a {kind} answer to {exercise} is the solution's code again"
            assert len(set(codes)) == len(codes), f"two {kind} answers to {exercise} are the same code"


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_earns_full_marks(graded_class, assignment):
    result = graded_class(assignment)["correct"]
    assert result.problem is None
    assert result.max_score > 0
    assert result.scores == result.max_scores


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_blank_release_earns_zero_without_crashing(graded_class, assignment):
    result = graded_class(assignment)["blank"]
    assert result.problem is None
    assert result.scores and set(result.scores.values()) == {0.0}


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("tampering", ["tests-edited-to-pass", "tests-deleted"])
def test_a_students_changed_test_cells_are_restored(graded_class, assignment, tampering):
    graded = graded_class(assignment)
    blank, correct = graded[f"blank-{tampering}"], graded[f"correct-{tampering}"]
    assert blank.problem is None and correct.problem is None
    assert set(blank.scores.values()) == {0.0}, "tampering with the tests must not earn points"
    assert correct.scores == correct.max_scores, "a correct answer keeps its points once the tests are back"
    restored = {t for tests in graded.exercises.values() for t in tests}
    assert restored <= set(blank.restored_cells), "every test cell was put back and reported"


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_test_cell_tagged_to_be_skipped_still_runs(graded_class, assignment):
    result = graded_class(assignment)["blank-tests-tagged-to-skip"]
    assert result.problem is None
    assert set(result.scores.values()) == {0.0}, f"tagging the tests {SKIP_TAGS} earned points: {result.scores}"


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_grading_skips_only_the_demo_cells_source_tags(graded_class, assignment):
    """Cells tagged skip-when-grading in source/ do not run at autograde; every other code cell does."""
    graded = graded_class(assignment)
    source = subs.read_notebook(COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb")
    demos = {subs.nbgrader_meta(c)["grade_id"] for c in source["cells"] if "skip-when-grading" in c["metadata"].get("tags", [])}
    autograded = subs.read_notebook(graded.course / "autograded" / "correct" / assignment / f"{assignment}.ipynb")
    ran = {subs.nbgrader_meta(c).get("grade_id"): c["execution_count"] is not None
           for c in autograded["cells"] if c["cell_type"] == "code"}
    assert all(not ran[d] for d in demos), "a demo cell ran at autograde"
    assert all(ran[name] for name in ran if name not in demos), "a cell without the tag did not run"


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("student", ["malformed-json", "missing-notebook"])
def test_a_broken_submission_is_reported_and_the_class_is_still_graded(graded_class, assignment, student):
    """Per notebook, the two that need no kernel; every other broken case is in tests/test_bad_submissions.py."""
    graded = graded_class(assignment)
    result = graded[student]
    assert result.problem, f"{student} must be reported, not given a silent score"
    expected = {"malformed-json": ProblemKind.NOT_A_NOTEBOOK, "missing-notebook": ProblemKind.MISSING}[student]
    assert result.problem.kind is expected, result.problem
    # the same run graded everyone else, the correct student fully
    assert graded["correct"].scores == graded["correct"].max_scores
    original = graded.submitted[student]
    if original is not None:  # grading never modifies what was submitted
        submitted = graded.course / "submitted" / student / assignment / f"{assignment}.ipynb"
        assert submitted.read_text() == original


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment,exercise,number,how", RIGHT, ids=[f"{a}-{e}-{n}" for a, e, n, _ in RIGHT])
def test_a_right_answer_written_another_way_earns_that_exercises_full_marks(graded_class, assignment, exercise, number, how):
    """Right answer k of every exercise shares the submission right-k; each exercise is graded on its own tests."""
    graded = graded_class(assignment)
    result = graded[f"right-{number}"]
    assert result.problem is None, result.problem
    own = {t: result.scores[t] for t in graded.exercises[exercise]}
    assert own == {t: result.max_scores[t] for t in own}, f"{how!r} is correct but lost points: {own}"


@pytest.mark.slow  # autogrades a class (once per session)
@pytest.mark.parametrize("assignment,exercise,number,mistake", WRONG,
                         ids=[f"{a}-{e}-{n}" for a, e, n, _ in WRONG])
def test_a_wrong_answer_loses_that_exercises_points_and_only_those(graded_class, assignment, exercise, number, mistake):
    graded = graded_class(assignment)
    result = graded[f"wrong-{exercise}-{number}"]
    assert result.problem is None, result.problem
    own_tests = graded.exercises[exercise]
    lost = sum(result.max_scores[t] - result.scores[t] for t in own_tests)
    assert lost > 0, f"{mistake!r} still earns all {exercise} points"
    others = {t: s for t, s in result.scores.items() if t not in own_tests}
    assert others == {t: result.max_scores[t] for t in others}, f"{mistake!r} also cost points elsewhere: {others}"


def _numbered(answers: dict, exercise: str, words: str) -> int:
    """The number (from 1) of the answer to `exercise` whose description contains `words`."""
    return next(n for n, how in enumerate(answers[exercise], start=1) if words in how)


def _outputs(graded, student: str, cell: str) -> list[dict]:
    path = graded.course / "autograded" / student / graded.assignment / f"{graded.assignment}.ipynb"
    return next(c["outputs"] for c in subs.read_notebook(path)["cells"] if subs.nbgrader_meta(c).get("grade_id") == cell)


@pytest.mark.slow  # autogrades a class (once per session)
def test_a_deprecation_warning_is_advice_a_wrong_answer_that_warns_still_loses(graded_class):
    """Result.tuples() prints SADeprecationWarning (SQLAlchemy 2.1) in both q1 test cells: nbgrader alone scores that 0.
    The right answer keeps its 4 points and the student reads the warning as advice; a wrong one with .tuples() loses."""
    graded = graded_class("01-async-database")
    right = f"right-{_numbered(subs.right_answers(graded.assignment), 'q1_nonblocking', 'tuples()')}"
    wrong = f"wrong-q1_nonblocking-{_numbered(subs.wrong_answers(graded.assignment), 'q1_nonblocking', 'tuples()')}"
    for student in (right, wrong):
        for test in graded.exercises["q1_nonblocking"]:
            streams = [o for o in _outputs(graded, student, test) if o["output_type"] == "stream"]
            assert [o["name"] for o in streams] == ["stdout"], f"{student} {test}: {streams}"
            text = "".join(streams[0]["text"])
            assert "[grader]" in text and "SADeprecationWarning" in text, streams
    own = graded.exercises["q1_nonblocking"]
    assert all(graded[right].scores[t] == graded[right].max_scores[t] for t in own), graded[right].scores
    assert sum(graded[wrong].max_scores[t] - graded[wrong].scores[t] for t in own) > 0, graded[wrong].scores


def with_cells_pasted_from(notebook: dict, other: dict, grade_ids: list[str], after: str) -> dict:
    """A student who copied cells of another notebook (JupyterLab keeps their nbgrader metadata) below `after`."""
    result = copy.deepcopy(notebook)
    pasted = [copy.deepcopy(c) for c in other["cells"] if subs.nbgrader_meta(c).get("grade_id") in grade_ids]
    for cell in pasted:
        cell["id"] += "-pasted"
    index = next(i for i, c in enumerate(result["cells"]) if subs.nbgrader_meta(c).get("grade_id") == after)
    result["cells"][index + 1:index + 1] = pasted
    return result


@pytest.mark.slow
def test_a_graded_cell_pasted_from_another_notebook_costs_nothing_and_is_reported(tmp_path):
    """Section 2's q6 answer and test cells pasted into a correct Section 1 notebook: nbgrader 0.9.6 graded nothing
    ("the nbgrader metadata may be corrupted", 0/14). Now the pasted cells run as plain cells and are reported."""
    assignment = "01-async-database"
    pasted = with_cells_pasted_from(subs.correct_submission(assignment), subs.correct_submission("02-dependency-injection"),
                                    ["q6_choice", "test_q6_choice_1"], after="q2_choice")
    course = make_course_folder(tmp_path / "course", [assignment])
    subs.write_class(course, assignment, {"pasted": pasted})
    (result,) = grade_assignment(course, assignment, config=Config({"Grading": {"jobs": 1}, "Execute": {"timeout": 20}}))
    assert result.problem is None, result.problem
    assert result.scores == result.max_scores and sum(result.max_scores.values()) == 14, result.scores
    assert {(c.kind, c.cell) for c in result.changes} == {(ChangeKind.FOREIGN, "q6_choice"),
                                                        (ChangeKind.FOREIGN, "test_q6_choice_1")}
    assert describe_changes(result.changes) == [
        "cell(s) pasted from another notebook or release, graded as plain cells: q6_choice, test_q6_choice_1"]
