"""Make student submissions from the course's own notebooks: correct, blank, wrong or broken.

Used by the grading tests and the grading benchmark, so both grade realistic work: the student's notebook
is always the release notebook, with answer cells filled in.
"""
import copy
import json
import runpy
from pathlib import Path

from . import COURSE_ROOT

WRONG_ANSWERS_FOLDER = COURSE_ROOT / "tests" / "wrong_answers"
RIGHT_ANSWERS_FOLDER = COURSE_ROOT / "tests" / "right_answers"


def read_notebook(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def nbgrader_meta(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_answer(cell: dict) -> bool:
    """An autograded or manually graded answer cell (where students write)."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_test(cell: dict) -> bool:
    """A graded test cell (autograder tests)."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell["cell_type"] == "code"


def blank_submission(assignment: str, course_root: Path = COURSE_ROOT) -> dict:
    """The release notebook, as a student who answered nothing submits it."""
    return read_notebook(course_root / "release" / assignment / f"{assignment}.ipynb")


def solution_answers(assignment: str, course_root: Path = COURSE_ROOT) -> dict[str, str]:
    """grade_id -> the solution's source of each answer cell (from solutions/)."""
    solution = read_notebook(course_root / "solutions" / assignment / f"{assignment}.ipynb")
    return {nbgrader_meta(c)["grade_id"]: _text(c["source"]) for c in solution["cells"] if is_answer(c)}


def with_answers(notebook: dict, answers: dict[str, str]) -> dict:
    """A copy of `notebook` whose answer cells named in `answers` hold the given sources."""
    unknown = set(answers) - {nbgrader_meta(c).get("grade_id") for c in notebook["cells"] if is_answer(c)}
    if unknown:
        raise KeyError(f"no answer cell named {sorted(unknown)}")
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_answer(cell) and grade_id in answers:
            cell["source"] = answers[grade_id]
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


def autograded_exercises(notebook: dict) -> dict[str, list[str]]:
    """Answer grade_id -> the test cells that grade it (the test cells named test_<grade_id>...)."""
    answers = [nbgrader_meta(c)["grade_id"] for c in notebook["cells"] if is_answer(c) and c["cell_type"] == "code"]
    tests = [nbgrader_meta(c)["grade_id"] for c in notebook["cells"] if is_test(c)]
    return {a: [t for t in tests if t == f"test_{a}" or t.startswith(f"test_{a}_")] for a in answers}


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


def write_submission(course_root: Path, student: str, assignment: str, notebook: dict | str) -> Path:
    """Put a notebook (or raw text, for malformed files) where nbgrader collects it: submitted/<student>/<a>/."""
    folder = Path(course_root) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook, indent=1), encoding="utf-8")
    return path


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source
