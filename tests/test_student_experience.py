"""A student's run through each release notebook: it stops only where the student has work to do.

"Stops only at answer cells" means, cell by cell, in a real kernel:
- a student who runs every cell without answering anything sees errors only in the exercises: an answer
  cell that raises its `NotImplementedError`, or that exercise's test cells (the stub's `NotImplementedError`,
  an assertion with a message, or a name the unanswered cell did not define). The course's own cells (setup,
  demos, plots) all run, and every exercise stops the student: a blank answer never passes its visible tests;
- a student who works top to bottom, as Run All leads them (run, stop at an exercise, answer it, run the
  answer and its test cell again, go on), sees each test pass right after answering, and nothing else stops
  them: the first failed attempt leaves nothing behind that breaks the answered exercise or the cells below.

And the visible tests explain themselves: every `assert` in a test cell's visible part has a message.
"""
import ast
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

from coursekit import assignments
from coursekit.testing import COURSE_ROOT
from coursekit import testing as subs

pytestmark = pytest.mark.slow  # runs kernels / nbgrader: skipped by `-m "not slow"`

ASSIGNMENTS = assignments(COURSE_ROOT)
CELL_TIMEOUT = 60  # per cell; the notebooks bound every wait on student code themselves (10-30 s)
HIDDEN_TESTS = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)


def release_notebook(assignment: str):
    return nbformat.read(COURSE_ROOT / "release" / assignment / f"{assignment}.ipynb", as_version=4)


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def exercises(notebook) -> dict[int, list[int]]:
    """Index of each code answer cell -> indexes of its test cells (named test_<grade_id>_<n>)."""
    answers = {i: grade_id(c) for i, c in enumerate(notebook.cells) if subs.is_answer(c) and c.cell_type == "code"}
    tests = {i: grade_id(c) for i, c in enumerate(notebook.cells) if subs.is_test(c)}
    return {a: [t for t, name in tests.items() if name == f"test_{answer}" or name.startswith(f"test_{answer}_")]
            for a, answer in answers.items()}


def describe(notebook, index: int) -> str:
    name = grade_id(notebook.cells[index]) or "no grade_id"
    first_line = notebook.cells[index].source.strip().splitlines()[0][:70] if notebook.cells[index].source.strip() else ""
    return f"cell {index} ({name}: {first_line!r})"


@contextmanager
def kernel(notebook, folder):
    """run(index, source=None) -> (ename, evalue) of the error the cell raised, or None."""
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})

    def run(index: int, source: str | None = None):
        cell = notebook.cells[index]
        if source is not None:
            cell.source = source
        client.execute_cell(cell, index)
        errors = [o for o in cell.outputs if o.output_type == "error"]
        return (errors[0].ename, errors[0].evalue) if errors else None

    with client.setup_kernel():
        yield run


def run_without_answering(assignment: str, folder) -> list[str]:
    """Every cell, top to bottom, no answer written; errors are recorded and the run goes on. Returns problems."""
    notebook = release_notebook(assignment)
    owner = {t: a for a, tests in exercises(notebook).items() for t in tests}
    answer_errors, stopped, problems = {}, set(), []
    with kernel(notebook, folder) as run:
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or (error := run(index)) is None:
                continue
            ename, evalue = error
            where = describe(notebook, index)
            if index in exercises(notebook):  # an answer cell
                answer_errors[index] = error
                stopped.add(index)
                if ename != "NotImplementedError":
                    problems.append(f"{where}: the blank answer raises {ename}: {evalue} (expected NotImplementedError)")
            elif index in owner:  # a test cell of an unanswered exercise
                stopped.add(owner[index])
                fine = (ename == "NotImplementedError"
                        or (ename == "AssertionError" and evalue.strip())
                        or (ename == "NameError" and owner[index] in answer_errors))
                if not fine:
                    problems.append(f"{where}: on a blank answer the test crashes with {ename}: {evalue} "
                                    "instead of the stub's NotImplementedError or an assertion message")
            else:
                problems.append(f"{where}: the course's own cell fails with {ename}: {evalue} when the exercises "
                                "above it are unanswered")
    for answer in exercises(notebook):
        if answer not in stopped:
            problems.append(f"{describe(notebook, answer)}: the blank answer passes its visible tests")
    return problems


def run_answering_in_turn(assignment: str, folder) -> list[str]:
    """Run All; at each stop, answer that exercise and run again from its answer cell (Run Selected Cell and All
    Below), in the same kernel, as a student does. Returns problems."""
    notebook = release_notebook(assignment)
    solutions = subs.solution_answers(assignment)
    todo = exercises(notebook)
    owner = {t: a for a, tests in todo.items() for t in tests}
    answered, problems = [], []
    with kernel(notebook, folder) as run:
        index = 0
        while index < len(notebook.cells):
            if notebook.cells[index].cell_type != "code" or (error := run(index)) is None:
                index += 1
                continue
            where, exercise = describe(notebook, index), index if index in todo else owner.get(index)
            if exercise is None:
                problems.append(f"{where}, the course's own cell, stops the student with {error[0]}: {error[1]}")
            elif exercise in answered:
                problems.append(f"{where} still fails after {describe(notebook, exercise)} was answered and run "
                                f"again from there: {error[0]}: {error[1]}")
            else:  # a stop at an exercise: the student answers it and runs again from the answer cell
                answered.append(exercise)
                notebook.cells[exercise].source = solutions[grade_id(notebook.cells[exercise])]
                index = exercise
                continue
            index += 1
    skipped = [describe(notebook, a) for a in todo if a not in answered]
    if skipped:
        problems.append(f"Run All went past these exercises while they were blank (the blank passes): {skipped}")
    return problems


SCENARIOS = {"run top to bottom with no answers": run_without_answering,
             "worked through top to bottom": run_answering_in_turn}


@pytest.fixture(scope="module")
def student_runs(tmp_path_factory):
    """(assignment, scenario) -> problems. The kernels run two at a time: each is its own process, so on two
    cores the six runs take about half as long as one after the other."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {(assignment, scenario): pool.submit(run, assignment, tmp_path_factory.mktemp(assignment))
                   for assignment in ASSIGNMENTS for scenario, run in SCENARIOS.items()}
    return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_running_a_notebook_without_answering_stops_only_at_the_exercises(assignment, student_runs):
    scenario = "run top to bottom with no answers"
    problems = student_runs[assignment, scenario]
    assert not problems, f"{assignment}, {scenario}:\n" + "\n".join(problems)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_student_answering_each_exercise_in_turn_runs_the_notebook_to_the_end(assignment, student_runs):
    scenario = "worked through top to bottom"
    problems = student_runs[assignment, scenario]
    assert not problems, f"{assignment}, {scenario}:\n" + "\n".join(problems)


def visible_asserts(notebook_path):
    """(test cell name, line, assert node) for every assert in the visible part of each test cell."""
    transform = TransformerManager().transform_cell  # IPython syntax (magics) to Python
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        if subs.is_test(cell):
            visible = HIDDEN_TESTS.sub("", cell.source)
            for node in ast.walk(ast.parse(transform(visible))):
                if isinstance(node, ast.Assert):
                    yield grade_id(cell), node.lineno, node


def prose(message: ast.expr) -> str:
    """The literal text of an assert message (the parts of an f-string or a concatenation that are not values)."""
    return " ".join(n.value for n in ast.walk(message) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def test_every_visible_assert_tells_the_student_what_went_wrong():
    """Never a bare AssertionError: each visible assert has a message, a sentence rather than a label."""
    bare, terse, count = [], [], 0
    for path in sorted((COURSE_ROOT / "source").glob("*/*.ipynb")):
        for test, line, node in visible_asserts(path):
            count += 1
            where = f"{path.parent.name} {test} line {line}: assert {ast.unparse(node.test)[:60]}"
            if node.msg is None:
                bare.append(where)
            elif len(re.findall(r"\w{2,}", prose(node.msg))) < 3:
                terse.append(f"{where}, {ast.unparse(node.msg)[:80]}")
    assert count, "no visible asserts found in source/"
    assert not bare, "asserts without a message (the student would see a bare AssertionError):\n" + "\n".join(bare)
    assert not terse, ("assert messages that do not say what was expected (fewer than 3 words: say what was expected and what happened):\n"
                       + "\n".join(terse))
