"""Every section notebook follows the course's anatomy: the points a student reads at the top are the points
nbgrader gives, every exercise has its tests right after it, and test cells are locked."""
import re

import pytest

from coursekit import assignments
from coursekit.testing import COURSE_ROOT
from coursekit.testing import is_answer, is_test, nbgrader_meta, read_notebook

ASSIGNMENTS = assignments(COURSE_ROOT)


def source(assignment):
    return read_notebook(COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb")


def points_by_exercise(notebook) -> dict[str, float]:
    """Exercise -> points: the test cells test_<exercise>[_n] of each code answer, or a prose answer's own points."""
    answers = [nbgrader_meta(c)["grade_id"] for c in notebook["cells"] if is_answer(c)]
    points = {}
    for answer in answers:
        cells = [c for c in notebook["cells"]
                 if nbgrader_meta(c).get("grade") and re.fullmatch(rf"(test_)?{re.escape(answer)}(_\d+)?", nbgrader_meta(c)["grade_id"])]
        points[answer] = sum(nbgrader_meta(c).get("points", 0) for c in cells)
    return points


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_points_table_at_the_top_matches_the_graded_cells(assignment):
    notebook = source(assignment)
    title = "".join(notebook["cells"][0]["source"])
    points = points_by_exercise(notebook)
    total = sum(nbgrader_meta(c).get("points", 0) for c in notebook["cells"] if nbgrader_meta(c).get("grade"))
    assert total == sum(points.values()), "every graded cell belongs to an exercise"
    rows = {}
    for line in title.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        named = re.findall(r"`(\w+)`", cells[0]) if cells else []
        if named and cells[-1].strip("* ").isdigit():
            rows[named[0]] = int(cells[-1].strip("* "))
        if cells and "total" in cells[0].lower():
            assert int(cells[-1].strip("* ")) == total, f"the title says total {cells[-1]}, the cells give {total}"
    assert rows == {name: int(p) for name, p in points.items()}, "the points table names each exercise with its points"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_code_exercise_is_followed_by_its_locked_test_cells(assignment):
    cells = source(assignment)["cells"]
    for index, cell in enumerate(cells):
        if not (is_answer(cell) and cell["cell_type"] == "code"):
            continue
        name = nbgrader_meta(cell)["grade_id"]
        tests = [c for c in cells[index + 1:] if is_test(c) and nbgrader_meta(c)["grade_id"].startswith(f"test_{name}")]
        assert tests, f"{name} has no test cell"
        for test in tests:
            assert nbgrader_meta(test)["locked"], f"{nbgrader_meta(test)['grade_id']} must be locked"
            text = "".join(test["source"])
            assert re.match(r"# \d+ points?", text), f"{nbgrader_meta(test)['grade_id']} starts with '# N points'"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_cells_grading_skips_are_locked_demos_that_say_so(assignment):
    """A cell tagged skip-when-grading is locked setup code (no answer, no test) and tells the student."""
    for cell in source(assignment)["cells"]:
        if "skip-when-grading" not in cell["metadata"].get("tags", []):
            continue
        meta, text = nbgrader_meta(cell), "".join(cell["source"])
        assert meta.get("locked") and not meta.get("grade") and not meta.get("solution"), (
            f"{meta.get('grade_id')}: only locked setup cells may be skipped when grading")
        assert "# Grading skips this cell (tag skip-when-grading)" in text, f"{meta['grade_id']} does not say so"


def hidden_tests(cell_source: str) -> str:
    """The code between BEGIN and END HIDDEN TESTS (dedented lines, as the cell runs them)."""
    lines, inside = [], False
    for line in cell_source.splitlines():
        if "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END HIDDEN TESTS" in line:
            inside = False
        elif inside:
            lines.append(line)
    return "\n".join(lines)


def in_words(message) -> bool:
    """A message with words in it (a string or an f-string), not only a value such as `response.text`."""
    import ast

    return message is not None and any(isinstance(node, ast.Constant) and isinstance(node.value, str)
                                       and any(ch.isalpha() for ch in node.value) for node in ast.walk(message))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_hidden_assert_says_what_was_expected(assignment):
    """Feedback hides the hidden tests' lines, so a bare `assert x` reaches the student as a bare AssertionError."""
    import ast

    bare = []
    for cell in source(assignment)["cells"]:
        if not is_test(cell):
            continue
        tree = ast.parse(hidden_tests("".join(cell["source"])))
        bare += [f"{nbgrader_meta(cell)['grade_id']}, line {node.lineno} of its hidden tests: {ast.unparse(node.test)[:70]}"
                 for node in ast.walk(tree) if isinstance(node, ast.Assert) and not in_words(node.msg)]
    assert not bare, "hidden asserts without a message in words a student can act on:\n" + "\n".join(bare)
