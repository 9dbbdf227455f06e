"""The last line of defence for the hidden tests (coursekit.scrub): an output that quotes a hidden-test line, however
escaped, is replaced by a note and reported; honest outputs are left alone. Units on in-memory notebooks, plus one
slow end-to-end run through `nbgrader autograde` and `generate_feedback`."""
import html
import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from nbgrader import utils
from traitlets.config import Config

from coursekit import assignments, outcomes
from coursekit import testing as subs
from coursekit.cells import hidden_test_delimiters
from coursekit.nbgrader_cli import nbgrader
from coursekit.outcomes import Problem, ProblemKind
from coursekit.preprocessors import HideHiddenTestTracebacks
from coursekit.scrub import ScrubHiddenTestText, readings, secret_lines

ASSIGNMENTS = assignments(subs.COURSE_ROOT)

HIDDEN_LINE = 'assert add(1000, -999) == 1, "don\'t forget negative numbers"'
TEST_SOURCE = f"""assert add(2, 2) == 4, "2 + 2 is 4"
### BEGIN HIDDEN TESTS
{HIDDEN_LINE}
add(0, 0) == 0
### END HIDDEN TESTS
"""
NOTE = "[grader] This output quoted the hidden tests and was removed."


def answer(source="def add(a, b):\n    return a + b\n", outputs=(), count=1):
    cell = new_code_cell(source, execution_count=count,
                         metadata={"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": "add"}})
    cell.outputs = list(outputs)
    return cell


def graded_cell(outputs=(), count=2, source=TEST_SOURCE):
    cell = new_code_cell(source, execution_count=count, metadata={"nbgrader": {
        "solution": False, "grade": True, "locked": True, "grade_id": "test_add_1", "points": 2}})
    cell.outputs = list(outputs)
    return cell


def stream(text, name="stdout"):
    return new_output("stream", name=name, text=text)


def scrub(*cells, config=None):
    nb = new_notebook(cells=list(cells))
    resources = {"nbgrader": {"notebook": "add"}}
    ScrubHiddenTestText(config=config or Config()).preprocess(nb, resources)
    return nb, [r for r in outcomes.records(resources) if isinstance(r, Problem)]


def shown(cell) -> str:
    return json.dumps(cell.outputs)


def test_print_in_its_list_repr_is_replaced_and_reported():
    history = ["", "def add(a, b):\n    return a + b\n", TEST_SOURCE, "print(In)"]
    printed = stream(repr(history) + "\n")  # what print(In) shows: \n and \' escapes, one long line
    assert HIDDEN_LINE not in printed.text
    nb, problems = scrub(graded_cell(), answer("print(In)", [printed], count=3))
    assert HIDDEN_LINE.split(",")[0] not in shown(nb.cells[1]) and NOTE in shown(nb.cells[1])
    assert [(p.kind, p.cells) for p in problems] == [(ProblemKind.HIDDEN_TESTS_SHOWN, ("add",))]
    assert "hidden-test line(s) of add" in problems[0].detail


def test_an_audit_hook_style_dump_in_the_test_cell_s_own_output_is_replaced_and_stays_stderr():
    dumped = stream(f"compile {TEST_SOURCE.encode()!r}\n", name="stderr")  # a bytes repr, as the compile event has it
    nb, problems = scrub(answer(), graded_cell([dumped]))
    assert NOTE in shown(nb.cells[1]) and "forget negative" not in shown(nb.cells[1])
    assert nb.cells[1].outputs[0].name == "stderr"
    assert utils.determine_grade(nb.cells[1]) == (0, 2.0), "a stderr output still scores 0"
    assert problems[0].cells == ("test_add_1",)


def test_a_traceback_quoting_a_hidden_line_elsewhere_is_replaced_and_stays_an_error():
    error = new_output("error", ename="NameError", evalue="name 'x' is not defined", traceback=[
        "Traceback (most recent call last):", f"File <string>:1\n----> 1 {HIDDEN_LINE}", "NameError: x"])
    nb, problems = scrub(graded_cell(), answer("raise_it()", [error], count=3))
    output = nb.cells[1].outputs[0]
    assert output.output_type == "error" and output.ename == "NameError" and "forget negative" not in shown(nb.cells[1])
    assert problems and problems[0].cells == ("add",)


@pytest.mark.parametrize("data", [
    {"text/html": "<pre>assert add(1000, -999) == 1, &quot;don't forget negative numbers&quot;</pre>"},
    {"text/plain": "'assert add(1000, -999) == 1, \\\\\"don't forget negative numbers\\\\\"'"},  # a repr of a repr
    {"application/json": {"source": HIDDEN_LINE}},
])
def test_display_data_in_any_format_is_searched(data):
    nb, problems = scrub(graded_cell(), answer("show()", [new_output("display_data", data=data)], count=3))
    assert problems and NOTE in shown(nb.cells[1])


def test_a_failing_hidden_assert_s_own_traceback_is_not_a_leak():
    """Its own frame quotes its line: HideHiddenTestTracebacks' business in feedback, not a student's doing."""
    failure = new_output("error", ename="AssertionError", evalue="don't forget negative numbers", traceback=[
        "Traceback (most recent call last):", f"Cell In[2], line 3\n----> 3 {HIDDEN_LINE}", "AssertionError: ..."])
    nb, problems = scrub(answer(), graded_cell([failure]))
    assert problems == [] and nb.cells[1].outputs == [failure]


def test_honest_outputs_that_share_words_or_short_lines_are_left_alone():
    honest = [stream("add(2, 2) == 4\nnegative numbers\nadd(0, 0) == 0\n"),  # a public line, words, a short line
              new_output("execute_result", data={"text/plain": "1"}, execution_count=3)]
    nb, problems = scrub(graded_cell(), answer("print(...)", honest, count=3))
    assert problems == [] and nb.cells[1].outputs == honest


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solutions_outputs_are_not_flagged(assignment):
    """Every output the executed solution notebooks hold, searched for the master's hidden lines: none."""
    solution = nbformat.read(subs.COURSE_ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    assert sum(len(c.get("outputs", [])) for c in solution.cells) > 0
    before = json.dumps(solution.cells, sort_keys=True)
    nb, problems = scrub(*solution.cells)
    assert problems == [] and json.dumps(nb.cells, sort_keys=True) == before


def test_readings_undo_escapes_colours_and_entities():
    assert "a 'b'\nc" in readings("\x1b[31ma \\'b\\'\\nc\x1b[0m")
    assert 'say "hi"' in readings("say &quot;hi&quot;")
    assert "é" in readings("\\xe9")


def test_the_delimiters_are_read_from_clear_hidden_tests_config_by_both_preprocessors():
    config = Config()
    config.ClearHiddenTests.begin_test_delimeter = "BEGIN SECRET"
    config.ClearHiddenTests.end_test_delimeter = "END SECRET"
    assert hidden_test_delimiters(config) == ("BEGIN SECRET", "END SECRET")
    assert hidden_test_delimiters() == ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")  # nbgrader's defaults
    source = TEST_SOURCE.replace("BEGIN HIDDEN TESTS", "BEGIN SECRET").replace("END HIDDEN TESTS", "END SECRET")
    nb = new_notebook(cells=[graded_cell(source=source)])
    assert HIDDEN_LINE in secret_lines(nb, "BEGIN SECRET", "END SECRET", 16)
    printed = stream(repr([source]))
    _, problems = scrub(graded_cell(source=source), answer("print(In)", [printed], count=3), config=config)
    assert problems, "the course's own delimiters are used"
    failure = new_output("error", ename="AssertionError", evalue="", traceback=[
        f"Cell In[2], line 3\n----> 3 {HIDDEN_LINE}"])
    hidden = new_notebook(cells=[graded_cell([failure], source=source)])
    HideHiddenTestTracebacks(config=config).preprocess(hidden, {})
    assert "forget negative" not in shown(hidden.cells[0])


# ---------------------------------------------------------------------------------------------------------------
# End to end: nbgrader autograde, then generate_feedback, with the course's config


ASSIGNMENT = "01-async-database"


def master_hidden_lines(course) -> set[str]:
    """The master notebook's hidden-test lines of 12 characters or more that appear nowhere else in it (not even
    inside a longer line)."""
    master = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    block = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
    public = "\n".join(block.sub("", c.source) for c in master.cells)
    hidden = {line.strip() for c in master.cells for b in block.findall(c.source) for line in b.splitlines()}
    return {line for line in hidden if len(line) >= 12 and line not in public}


@pytest.mark.slow
def test_feedback_of_a_submission_that_prints_hidden_tests_shows_none(tmp_path):
    """The answer cell prints hidden-test lines it was handed (as if a kernel-side defence failed): without a sandbox,
    it reads them from the course's own source/ folder, as print(In) would print them. The graded notebook and the
    feedback show the note, the log names the student's cell, and the score is what the answers earn."""
    course = subs.make_course_folder(tmp_path / "course", [ASSIGNMENT])
    correct = subs.correct_submission(ASSIGNMENT)
    first = next(iter(subs.autograded_exercises(correct)))
    master = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    leak = (f"import json\nmaster_sources = [''.join(c['source']) for c in json.load(open({str(master)!r}))['cells']]\n"
            "print(master_sources)  # a list repr, escaped like print(In)\n")
    answers = subs.solution_answers(ASSIGNMENT)
    subs.write_submission(course, "leaks", ASSIGNMENT, subs.with_answers(correct, {first: leak + answers[first]}))
    subs.write_submission(course, "honest", ASSIGNMENT, correct)
    run = nbgrader(course, "autograde", ASSIGNMENT, "--GuardedExecute.unsafe_no_sandbox=True",
                   "--Execute.timeout=20")
    assert f"showed hidden tests: cell(s) {first} printed" in run.stderr
    secret = master_hidden_lines(course)
    assert len(secret) > 20
    graded = (course / "autograded" / "leaks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "[grader] This output quoted the hidden tests" in graded
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    for student in ("leaks", "honest"):
        page = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
        feedback = html.unescape(re.sub(r"<[^>]*>", "", page))  # the text, scripts and styles included
        assert not [line for line in secret if line in feedback], student
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "fastapi-async-db") as gradebook:
        for student in ("leaks", "honest"):
            submission = gradebook.find_submission(ASSIGNMENT, student)
            assert submission.score == submission.max_score > 0, student
