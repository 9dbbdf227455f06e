"""Test fixtures and test data: course folders and student submissions made from the course's own notebooks
(correct, blank, wrong or broken), for the tests and the grading benchmark, so both grade realistic work: the
student's notebook is always the release notebook, with answer cells filled in.

Not used by the grading itself. It works in a checkout of the course repository (an editable install), the only
place where tests/ and its wrong answers exist: COURSE_ROOT is that checkout.
"""
import copy
import hashlib
import json
import os
import re
import runpy
import shutil
import signal
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from . import cells
from .cells import autograded_exercises, is_answer, is_test  # noqa: F401 (the tests' vocabulary)
from .nbgrader_cli import nbgrader

COURSE_ROOT = Path(__file__).resolve().parent.parent
WRONG_ANSWERS_FOLDER = COURSE_ROOT / "tests" / "wrong_answers"
RIGHT_ANSWERS_FOLDER = COURSE_ROOT / "tests" / "right_answers"
# Tags that make a cell skip execution: nbclient's default, and the course's for its demo cells.
SKIP_TAGS = ["skip-execution", "skip-when-grading"]


def read_notebook(path: Path) -> NotebookNode:
    """A notebook as its file holds it (not upgraded or normalised: writing it back gives the same JSON)."""
    return nbformat.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def blank_submission(assignment: str, course_root: Path = COURSE_ROOT) -> dict:
    """The release notebook, as a student who answered nothing submits it."""
    return read_notebook(course_root / "release" / assignment / f"{assignment}.ipynb")


def solution_answers(assignment: str, course_root: Path = COURSE_ROOT) -> dict[str, str]:
    """grade_id -> the solution's source of each answer cell (from solutions/)."""
    solution = read_notebook(course_root / "solutions" / assignment / f"{assignment}.ipynb")
    return {nbgrader_meta(c)["grade_id"]: _text(c["source"]) for c in solution["cells"] if is_answer(c)}


def with_answers(notebook: dict, answers: dict[str, str]) -> dict:
    """A copy of `notebook` whose answer cells named in `answers` hold the given sources."""
    unknown = set(answers) - {cells.grade_id(c) for c in notebook["cells"] if is_answer(c)}
    if unknown:
        raise KeyError(f"no answer cell named {sorted(unknown)}")
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        name = cells.grade_id(cell)
        if is_answer(cell) and name in answers:
            cell["source"] = answers[name]
    return result


def correct_submission(assignment: str, course_root: Path = COURSE_ROOT) -> dict:
    """The release notebook with every answer cell filled in with the solution."""
    return with_answers(blank_submission(assignment, course_root), solution_answers(assignment, course_root))


def wrong_answers(assignment: str, folder: Path = WRONG_ANSWERS_FOLDER) -> dict[str, dict[str, str]]:
    """grade_id -> {mistake: answer source}, from tests/wrong_answers/<assignment>.py."""
    path = Path(folder) / f"{assignment}.py"
    if not path.exists():
        return {}
    return runpy.run_path(str(path))["WRONG_ANSWERS"]


def right_answers(assignment: str, folder: Path = RIGHT_ANSWERS_FOLDER) -> dict[str, dict[str, str]]:
    """grade_id -> {how the answer is written: answer source}, from tests/right_answers/<assignment>.py."""
    path = Path(folder) / f"{assignment}.py"
    if not path.exists():
        return {}
    return runpy.run_path(str(path))["RIGHT_ANSWERS"]


def right_answer_sets(assignment: str, folder: Path = RIGHT_ANSWERS_FOLDER) -> list[dict[str, str]]:
    """The right answers packed into as few submissions as possible: set k holds the k-th right answer of every
    exercise that has one. Exercises are graded independently, so one notebook checks one answer per exercise."""
    answers = right_answers(assignment, folder)
    sets = max((len(variants) for variants in answers.values()), default=0)
    return [{exercise: list(variants.values())[k] for exercise, variants in answers.items() if k < len(variants)}
            for k in range(sets)]


def with_test_cells_replaced(notebook: dict, source: str = "pass") -> dict:
    """A copy whose test cells were all overwritten (a student 'fixing' failing tests)."""
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        if is_test(cell):
            cell["source"] = source
    return result


def with_test_cells_deleted(notebook: dict) -> dict:
    """A copy with every test cell removed."""
    result = copy.deepcopy(notebook)
    result["cells"] = [c for c in result["cells"] if not is_test(c)]
    return result


def with_test_cells_tagged(notebook: dict, tags: list[str]) -> dict:
    """A student who tagged every test cell (JupyterLab's property inspector) so that grading would skip it."""
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        if is_test(cell):
            cell["metadata"]["tags"] = cell["metadata"].get("tags", []) + tags
    return result


def with_cell_copied(notebook: dict, grade_id: str) -> dict:
    """A student who copied a cell (Ctrl+C, Ctrl+V) right below itself."""
    result = copy.deepcopy(notebook)
    index = next(i for i, c in enumerate(result["cells"]) if cells.grade_id(c) == grade_id)
    duplicate = copy.deepcopy(result["cells"][index])
    duplicate["id"] = duplicate["id"] + "-copy"
    result["cells"].insert(index + 1, duplicate)
    return result


def with_cell_made_markdown(notebook: dict, grade_id: str) -> dict:
    """A student who turned a code cell into a markdown cell (Esc, M)."""
    result = copy.deepcopy(notebook)
    cell = next(c for c in result["cells"] if cells.grade_id(c) == grade_id)
    cell["cell_type"] = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    return result


def with_cell_deleted(notebook: dict, grade_id: str) -> dict:
    result = copy.deepcopy(notebook)
    result["cells"] = [c for c in result["cells"] if cells.grade_id(c) != grade_id]
    return result


def first_test_cell(notebook: dict) -> str:
    return next(nbgrader_meta(c)["grade_id"] for c in notebook["cells"] if is_test(c))


def half_correct_class(assignment: str, students: int) -> dict[str, dict]:
    """The benchmarks' class: even-numbered students correct, the others each with one realistic wrong answer
    (tests/wrong_answers/, taken in turn), so that two runs grade the same notebooks."""
    correct, answers = correct_submission(assignment), solution_answers(assignment)
    mistakes = [(exercise, source) for exercise, sources in wrong_answers(assignment).items() for source in sources.values()]
    notebooks = {}
    for n in range(students):
        if n % 2 == 0:
            notebooks[f"student-{n:02d}"] = correct
        else:
            exercise, source = mistakes[n % len(mistakes)]
            notebooks[f"student-{n:02d}"] = with_answers(correct, {**answers, exercise: source})
    return notebooks


def write_submission(course_root: Path, student: str, assignment: str, notebook: dict | str) -> Path:
    """Put a notebook (or raw text, for malformed files) where nbgrader collects it: submitted/<student>/<a>/."""
    folder = Path(course_root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def make_course_folder(target: Path, assignments: list[str], course_root: Path = COURSE_ROOT) -> Path:
    """A fresh course folder in `target` (nbgrader_config.py + source/), with each assignment generated.

    This is what an instructor's course folder looks like before students submit: nbgrader's gradebook
    knows the assignments and their graded cells.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(course_root / "nbgrader_config.py", target / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(course_root / "source" / assignment, target / "source" / assignment, dirs_exist_ok=True)
        nbgrader(target, "generate_assignment", assignment, "--force")
    return target


def write_class(course_root: Path, assignment: str, submitted: dict[str, dict | str | None]) -> None:
    """Write a class of submissions: student -> notebook, raw text (a malformed file) or None (an empty folder)."""
    for student, notebook in submitted.items():
        if notebook is None:  # a student folder without the notebook in it
            (Path(course_root) / "submitted" / student / assignment).mkdir(parents=True)
        else:
            write_submission(course_root, student, assignment, notebook)


def tree_digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------
# Shared by several test modules (tests import helpers from here only, never from conftest or each other)

def _assignments() -> list[str]:
    from . import assignments
    return assignments(COURSE_ROOT)


ASSIGNMENTS = _assignments()


def _hidden_tests_pattern() -> re.Pattern:
    """nbgrader's own hidden-test delimiters (ClearHiddenTests), so a course that changes them is still checked."""
    from nbgrader.preprocessors import ClearHiddenTests

    from .config import course_config

    clear = ClearHiddenTests(config=course_config(COURSE_ROOT))
    begin, end = re.escape(clear.begin_test_delimeter), re.escape(clear.end_test_delimeter)
    return re.compile(rf"[^\n]*{begin}[^\n]*\n(.*?)[^\n]*{end}", re.S)


def hidden_test_lines(assignment: str) -> set[str]:
    """Lines of the assignment's hidden tests that say something and appear nowhere outside the hidden tests."""
    source = read_notebook(COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb")
    texts = ["".join(c["source"]) for c in source["cells"]]
    hidden_tests = _hidden_tests_pattern()
    public = "\n".join(hidden_tests.sub("", t) for t in texts)
    hidden = {line.strip() for t in texts for block in hidden_tests.findall(t) for line in block.splitlines()}
    return {line for line in hidden if len(line) >= 12 and line not in public}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self.skipping = [], 0

    def handle_starttag(self, tag, attrs):
        self.skipping += tag in ("style", "script")

    def handle_endtag(self, tag):
        self.skipping -= tag in ("style", "script")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """What a student reads on the page (tags, styles and scripts removed, entities decoded)."""
    parser = _Text()
    parser.feed(html)
    return "".join(parser.parts)


PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==(\S+)$")


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        match = PIN.match(line)
        if match:
            found[match.group(1).lower()] = match.group(3)
    return found


# Browser tests (tests/test_browser.py, tests/test_instructor_safety_browser.py): the distribution's Chromium.
# The Debian package's binary (the /usr/bin/chromium wrapper only adds flags and prints a harmless warning).
BROWSERS = ["/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "chromium-browser"]
INSTALL_HINT = (
    "The browser test needs Chromium from your distribution: `sudo apt-get install chromium` on Debian/Ubuntu "
    "(`make test` installs it by itself when run as root), or set CHROMIUM=/path/to/chromium-or-chrome."
)


def find_browser() -> str | None:
    for candidate in [os.environ.get("CHROMIUM"), *BROWSERS]:
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(server: subprocess.Popen) -> None:
    """End `make start` and the JupyterLab it started (their own process group), kernels included."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
            server.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
