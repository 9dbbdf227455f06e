"""The capstone's second half: the student's own test suite, graded by mutation analysis inside the grading kernel.

A suite earns test_my_tests_1's points by passing on the reference app (first and last run), then one point per
mutant of the reference app it kills. The reference and the mutants live in the hidden tests of source/ only; the
reference must be the setup cells plus the solution's endpoints, and no mutant may be equivalent to it (the
solution's own suite kills all of them). The suites in tests/right_answers and tests/wrong_answers are graded for
real by `graded_class` (a warm, sandboxed kernel per notebook, as in tests/test_grading.py).
"""
import ast
import re

import pytest

from coursekit import testing as subs
from coursekit.nbgrader_cli import nbgrader
from coursekit.testing import COURSE_ROOT, html_text

ASSIGNMENT = "04-capstone"
SOLUTION = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def source_cells() -> dict[str, str]:
    notebook = subs.read_notebook(COURSE_ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return {subs.nbgrader_meta(c)["grade_id"]: "".join(c["source"]) for c in notebook["cells"]
            if subs.nbgrader_meta(c).get("grade_id")}


def hidden_analysis() -> dict:
    """The reference source and the mutants, read from test_my_tests_1's hidden tests (as the grader runs them)."""
    block = HIDDEN.search(source_cells()["test_my_tests_1"]).group(1)
    tree = ast.parse(block)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("_REFERENCE_SOURCE", "_MUTANTS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return {"reference": found["_REFERENCE_SOURCE"],
            "mutants": {name: {"kind": kind, "description": description, "hidden": hidden, "edits": edits}
                        for name, kind, description, hidden, edits in found["_MUTANTS"]}}


def mutant_cells() -> dict[str, str]:
    """mutant name -> the grade id of the test cell that awards its point."""
    return {re.search(r"_assert_killed\('(\w+)'\)", text).group(1): cell
            for cell, text in source_cells().items() if "_assert_killed('" in text}


def code(text: str) -> str:
    return ast.dump(ast.parse(text))


def test_the_reference_app_is_the_given_code_plus_the_solution():
    """The grader's reference is exactly what a student sees in setup plus the solution's endpoints (re-running a
    cell's forget_route is left out): the two cannot drift apart."""
    cells = source_cells()
    service = next(t for t in cells.values() if t.startswith("class DuplicateTitle"))
    router = next(t for t in cells.values() if t.startswith("router = APIRouter"))
    endpoints = ["\n".join(line for line in SOLUTION.sub("", cells[name]).splitlines()
                           if not line.startswith("forget_route("))
                 for name in ("create_ticket", "update_ticket", "delete_ticket", "read_ticket")]
    assert code(hidden_analysis()["reference"]) == code("\n\n".join([service, router, *endpoints]))


def test_every_mutant_is_one_edit_of_the_reference_and_has_its_own_graded_cell():
    analysis = hidden_analysis()
    reference, mutants = analysis["reference"], analysis["mutants"]
    assert len(mutants) >= 12 and 4 <= sum(m["hidden"] for m in mutants.values()) < len(mutants)
    variants = set()
    for name, mutant in mutants.items():
        mutated = reference
        for old, new in mutant["edits"]:
            assert mutated.count(old) == 1, f"{name}: an edit does not match the reference exactly once"
            mutated = mutated.replace(old, new)
        variants.add(code(mutated))
        assert mutant["kind"], name
        assert mutant["hidden"] or mutant["description"], f"{name}: a visible mutant is described in words"
    assert code(reference) not in variants and len(variants) == len(mutants), "two mutants, or a mutant and the reference, are the same code"
    cells = mutant_cells()
    assert set(cells) == set(mutants), "each mutant has exactly one test cell"
    notebook = subs.read_notebook(COURSE_ROOT / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    points = {subs.nbgrader_meta(c)["grade_id"]: subs.nbgrader_meta(c).get("points") for c in notebook["cells"]
              if subs.nbgrader_meta(c).get("grade_id") in cells.values()}
    assert set(points.values()) == {1}


def secrets_of_hidden_mutants() -> tuple[set[str], set[str]]:
    """What must never reach a student: the hidden mutants' names, and the lines their edits add (lines that
    say something and appear nowhere in the notebook outside its hidden tests and solutions)."""
    mutants = hidden_analysis()["mutants"]
    public = {line.strip() for text in source_cells().values()
              for line in SOLUTION.sub("", HIDDEN.sub("", text)).splitlines()}
    names = {name for name, mutant in mutants.items() if mutant["hidden"]}
    lines = {line.strip() for m in mutants.values() if m["hidden"] for _, new in m["edits"] for line in new.splitlines()
             if len(line.strip()) >= 12 and line.strip() not in public}
    assert names and lines
    return names, lines


def shows_hidden_mutants(text: str) -> list[str]:
    names, lines = secrets_of_hidden_mutants()
    shown = {line.strip() for line in text.splitlines()}
    return sorted({n for n in names if n in text} | (lines & shown))


def test_the_release_shows_no_hidden_mutant_and_no_line_of_the_reference():
    release = subs.read_notebook(COURSE_ROOT / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    text = "\n".join("".join(c["source"]) for c in release["cells"])
    assert not shows_hidden_mutants(text)
    assert "_REFERENCE_SOURCE" not in text and "_MUTANTS" not in text


def my_tests_scores(result) -> tuple[float, dict[str, bool]]:
    """(test_my_tests_1's score, mutant -> killed) of a graded submission."""
    killed = {name: result.scores[cell] == 1 for name, cell in mutant_cells().items()}
    return result.scores["test_my_tests_1"], killed


@pytest.mark.slow  # autogrades the capstone class (once per session)
def test_the_solutions_own_suite_passes_the_reference_and_kills_every_mutant_hidden_ones_included(graded_class):
    reference, killed = my_tests_scores(graded_class(ASSIGNMENT)["correct"])
    assert reference == 2
    assert all(killed.values()), f"mutants the solution's suite does not kill (equivalent?): {[m for m, k in killed.items() if not k]}"


@pytest.mark.slow  # autogrades the capstone class (once per session)
@pytest.mark.parametrize("number", [1, 2, 3])
def test_a_strong_suite_written_another_way_kills_every_mutant(graded_class, number):
    reference, killed = my_tests_scores(graded_class(ASSIGNMENT)[f"right-{number}"])
    assert reference == 2 and all(killed.values()), [m for m, k in killed.items() if not k]


def wrong_suite(graded_class, mistake: str):
    names = list(subs.wrong_answers(ASSIGNMENT)["my_tests"])
    return graded_class(ASSIGNMENT)[f"wrong-my_tests-{names.index(mistake) + 1}"]


@pytest.mark.slow  # autogrades the capstone class (once per session)
def test_a_happy_path_suite_passes_but_loses_the_mutants_it_cannot_see(graded_class):
    result = wrong_suite(graded_class, "happy paths only: every request is the owner's, nothing is deleted twice or "
                                       "read after a rollback")
    reference, killed = my_tests_scores(result)
    assert reference == 2, "the happy paths pass on the reference app"
    assert killed["create_answers_200"], "it asserts 201, so it kills the 200 mutant"
    survivors = {m for m, k in killed.items() if not k}
    assert {"patch_any_owner", "delete_any_owner", "forbidden_instead_of_not_found", "owner_from_payload",
            "no_limit_cap", "commit_without_rollback", "hard_delete"} <= survivors, survivors


@pytest.mark.slow  # autogrades the capstone class (once per session)
def test_a_suite_that_fails_on_the_reference_earns_nothing_for_its_tests(graded_class):
    result = wrong_suite(graded_class, "a test that fails on the correct app (it expects 200 from POST)")
    reference, killed = my_tests_scores(result)
    assert reference == 0 and not any(killed.values()), "its ownership and limit tests would kill mutants, yet earn nothing"
    assert result.scores["test_create_ticket_1"] == result.max_scores["test_create_ticket_1"]


@pytest.mark.parametrize("mistake", ["tests without asserts: they pass whatever the app does", "asserts that cannot fail",
                                     "the client built once, at the top level, from the notebook's own app: the "
                                     "grader's apps are never tested"])
@pytest.mark.slow  # autogrades the capstone class (once per session)
def test_a_suite_that_passes_whatever_the_app_does_kills_nothing(graded_class, mistake):
    reference, killed = my_tests_scores(wrong_suite(graded_class, mistake))
    assert reference == 2, "it passes on the reference app"
    assert not any(killed.values()), [m for m, k in killed.items() if k]


@pytest.mark.slow  # autogrades the capstone class (once per session)
def test_feedback_counts_the_survivors_and_names_only_the_kind_of_a_hidden_one(graded_class):
    graded = graded_class(ASSIGNMENT)
    student = "wrong-my_tests-1"  # the happy-path suite: hidden mutants survive it
    nbgrader(graded.course, "generate_feedback", ASSIGNMENT, f"--student={student}", "--force")
    text = html_text((graded.course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert re.search(r"Mutants killed: \d+ of 13", text), "the feedback says how many mutants the suite killed"
    assert "a hidden mutant (a fault of kind: data loss) survived" in text, "a hidden survivor is named by its kind"
    leaked = shows_hidden_mutants(text)
    assert not leaked, f"the feedback shows hidden mutants: {leaked[:5]}"


HIDING_SUITE = '''
def test_that_hides_every_later_error():
    get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)


def test_one():
    pass


def test_two():
    pass
'''


@pytest.mark.slow
def test_a_suite_that_changes_the_kernel_while_it_runs_scores_nothing_and_is_reported(tmp_path):
    """The student's tests run inside test cells, under the same probes as any test cell: a test that installs an
    exception handler (which would hide the failures of every later cell) makes the cells it ran in score 0."""
    from traitlets.config import Config

    from coursekit.grading import grade_assignment
    from coursekit.outcomes import ProblemKind

    correct = subs.correct_submission(ASSIGNMENT)
    answers = subs.solution_answers(ASSIGNMENT)
    course = subs.make_course_folder(tmp_path, [ASSIGNMENT])
    subs.write_class(course, ASSIGNMENT, {"hider": subs.with_answers(correct, {**answers, "my_tests": HIDING_SUITE})})
    (result,) = grade_assignment(course, ASSIGNMENT, config=Config({"Grading": {"jobs": 1}}))
    assert result.problem is not None and result.problem.kind is ProblemKind.TAMPERED, result.problem
    my_tests = {cell: score for cell, score in result.scores.items() if cell.startswith("test_my_tests_")}
    assert set(my_tests.values()) == {0.0}, my_tests
    others = {cell: score for cell, score in result.scores.items() if cell not in my_tests}
    assert others == {cell: result.max_scores[cell] for cell in others}, "the endpoints' points are untouched"
