"""The feedback students receive (`nbgrader generate_feedback`) shows their score and their failures, never the
hidden tests: not in the test cells (ClearHiddenTests) and not in the traceback of a failing hidden assert,
which quotes its own line (coursekit's HideHiddenTestTracebacks, configured in nbgrader_config.py).
"""
import json
import re

import pytest

from coursekit.nbgrader_cli import nbgrader
from coursekit.testing import ASSIGNMENTS, hidden_test_lines, html_text

pytestmark = pytest.mark.slow  # runs kernels / nbgrader: skipped by `-m "not slow"`

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def hidden_lines_in_tracebacks(notebook_path, secret: set[str]) -> set[str]:
    """Hidden-test lines quoted by the error tracebacks of a graded notebook (what would leak without the fix)."""
    text = "\n".join(ANSI.sub("", "\n".join(o.get("traceback", [])))
                     for c in json.loads(notebook_path.read_text())["cells"] for o in c.get("outputs", [])
                     if o.get("output_type") == "error")
    return {line for line in secret if line in text}


def hidden_test_errors(notebook_path) -> int:
    """How many cells that hold hidden tests show an error in a graded notebook."""
    return sum(1 for c in json.loads(notebook_path.read_text())["cells"] if "BEGIN HIDDEN TESTS" in "".join(c["source"])
               and any(o.get("output_type") == "error" for o in c.get("outputs", [])))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_on_a_failed_hidden_test_shows_no_hidden_test(graded_class, assignment):
    graded = graded_class(assignment)
    secret = hidden_test_lines(assignment)
    assert secret, "the assignment has no hidden tests"
    graded_notebook = lambda student: graded.course / "autograded" / student / assignment / f"{assignment}.ipynb"
    failing = [s for s, r in graded.results.items() if r.problem is None and r.score < r.max_score]
    # the failing submission with the most errors in cells that hold hidden tests: the one that would leak most
    student = max(failing, key=lambda s: hidden_test_errors(graded_notebook(s)))
    assert hidden_test_errors(graded_notebook(student)), "no submission fails in a hidden test: this proves nothing"
    # The grading kernel blanks a test cell's hidden lines in its linecache (coursekit.guard_hook): a failing hidden
    # assert's traceback gives its line number, not its text, already in the autograded notebook.
    assert not hidden_lines_in_tracebacks(graded_notebook(student), secret)

    nbgrader(graded.course, "generate_feedback", assignment, f"--student={student}", "--force")
    text = html_text((graded.course / "feedback" / student / assignment / f"{assignment}.html").read_text())
    result = graded[student]
    # the total also counts manually graded answers, not yet graded here
    assert re.search(rf"Score: {result.score:.1f} / [\d.]+", text), "the feedback shows the student's score"
    assert "AssertionError" in text or "Error" in text, "the feedback shows what failed"
    leaked = sorted(line for line in secret if line in text)
    assert not leaked, f"feedback for {student} shows hidden tests: {leaked[:3]}"
