"""What a notebook cell is to nbgrader, in one place: nbgrader's own predicates (nbgrader.utils) on notebooks read
with nbformat, the course's naming rule that ties test cells to their exercise, and what of a master cell students
must never see (its solution and hidden-test blocks)."""
import re
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader import utils


def read(path: Path) -> NotebookNode:
    return nbformat.read(str(path), as_version=4)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    """An autograded or manually graded answer cell (where students write)."""
    return bool(utils.is_solution(cell))


def is_test(cell) -> bool:
    """A graded test cell (autograder tests)."""
    return bool(utils.is_grade(cell)) and not utils.is_solution(cell) and cell.cell_type == "code"


def autograded_exercises(notebook) -> dict[str, list[str]]:
    """Answer grade_id -> the test cells that grade it (the test cells named test_<grade_id>...)."""
    answers = [grade_id(c) for c in notebook.cells if is_answer(c) and c.cell_type == "code"]
    tests = [grade_id(c) for c in notebook.cells if is_test(c)]
    return {a: [t for t in tests if t == f"test_{a}" or t.startswith(f"test_{a}_")] for a in answers}


# nbgrader's default delimiters (ClearSolutions.begin_solution_delimeter, ClearHiddenTests.begin_test_delimeter).
SECRET_BLOCK = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END (SOLUTION|HIDDEN TESTS)", re.S)


def secret_lines(sources: Iterable[str]) -> tuple[set[str], str]:
    """(secret lines, public text) of master cell sources: the stripped lines of their solution and hidden-test
    blocks that say something (a word character, not a lone bracket) and appear as no line outside those blocks,
    and all the text outside them."""
    secret, public = set(), []
    for source in sources:
        public.append(SECRET_BLOCK.sub("", source))
        secret |= {line.strip() for _, block, _ in SECRET_BLOCK.findall(source) for line in block.splitlines()}
    public_text = "\n".join(public)
    public_lines = {line.strip() for line in public_text.splitlines()}
    return {line for line in secret - public_lines if re.search(r"\w", line)}, public_text


def hidden_test_delimiters(config=None) -> tuple[str, str]:
    """(begin, end) of the hidden-test blocks, as nbgrader's ClearHiddenTests reads them from the course's config
    (`c.ClearHiddenTests.begin_test_delimeter`; nbgrader's default "BEGIN HIDDEN TESTS"): one home for them."""
    from nbgrader.preprocessors import ClearHiddenTests

    clear = ClearHiddenTests(config=config) if config is not None else ClearHiddenTests()
    return clear.begin_test_delimeter, clear.end_test_delimeter
