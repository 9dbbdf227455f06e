"""Autograde every submission of an assignment, one `nbgrader autograde --student` process per student.

One process per student isolates students from each other: a notebook that loops forever, kills its kernel
or is not valid JSON cannot stop the run; it is reported by name with the reason. Scores are read back from
the course's gradebook, so they are exactly what `nbgrader autograde` wrote.
"""
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import TimeoutExpired

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from . import COURSE_ROOT
from .nbgrader_cli import NbgraderFailed, nbgrader

# A whole notebook may take at most this many seconds to grade, whatever its cells do.
NOTEBOOK_DEADLINE = 600


@dataclass
class SubmissionResult:
    """What grading one student's submission gave."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> automatic score
    max_scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> points
    problem: str | None = None  # why this submission could not be graded normally; None when all went well
    restored_cells: list[str] = field(default_factory=list)  # locked/test cells the student changed or deleted
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())


def submitted_students(course_root: Path, assignment: str) -> list[str]:
    """Students with a folder submitted/<student>/<assignment>/."""
    submitted = Path(course_root) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def grade_assignment(course_root: Path, assignment: str, students: list[str] | None = None,
                     jobs: int | None = None, cell_timeout: int | None = None) -> list[SubmissionResult]:
    """Autograde the submissions of `assignment` (all students in submitted/, or `students`).

    jobs: how many students are graded at once (default: one per core).
    cell_timeout: seconds a cell may run before it is interrupted (default: nbgrader_config.py's).
    Returns one result per student, in the order of `students`; never raises because of a submission.
    """
    course_root = Path(course_root).resolve()
    students = students if students is not None else submitted_students(course_root, assignment)
    jobs = jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda s: grade_one(course_root, assignment, s, cell_timeout), students))


def grade_one(course_root: Path, assignment: str, student: str, cell_timeout: int | None = None) -> SubmissionResult:
    """Autograde one student's submission and read the scores back from the gradebook."""
    started = time.perf_counter()
    result = SubmissionResult(student)
    problem = _check_submission(course_root, assignment, student)
    if problem is None:
        args = ["autograde", assignment, "--student", student, "--force"]
        if cell_timeout is not None:
            args.append(f"--Execute.timeout={cell_timeout}")
        try:
            process = nbgrader(course_root, *args, timeout=NOTEBOOK_DEADLINE)
            problem = _problems_in_graded_notebooks(course_root, assignment, student)
            result.restored_cells = _changed_locked_cells(course_root, assignment, student)
        except TimeoutExpired:
            problem = f"grading took longer than {NOTEBOOK_DEADLINE} s and was stopped"
        except NbgraderFailed as failure:
            problem = _reason_from_log(failure.process.stdout + failure.process.stderr)
    result.problem = problem
    if problem is None or not problem.startswith(("missing", "not a valid")):
        _read_scores(course_root, assignment, student, result)
    result.seconds = time.perf_counter() - started
    return result


def _check_submission(course_root: Path, assignment: str, student: str) -> str | None:
    """Say what is wrong with the submitted files before nbgrader sees them (None when they look fine)."""
    source_notebooks = sorted((course_root / "source" / assignment).glob("*.ipynb"))
    folder = course_root / "submitted" / student / assignment
    for source in source_notebooks:
        submitted = folder / source.name
        if not submitted.exists():
            return f"missing: {source.name} was not submitted"
        try:
            nbformat.validate(nbformat.reads(submitted.read_text(encoding="utf-8"), as_version=4))
        except (ValueError, UnicodeDecodeError, nbformat.ValidationError, KeyError, AttributeError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            return f"not a valid notebook: {source.name} ({first_line[:200]})"
    return None


def _problems_in_graded_notebooks(course_root: Path, assignment: str, student: str) -> str | None:
    """Cells that nbgrader had to interrupt (timeouts) in the autograded notebooks, as one message."""
    timed_out = []
    for notebook in sorted((course_root / "autograded" / student / assignment).glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
                    timed_out.append(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id"))
    if timed_out:
        return f"timed out: cell(s) {', '.join(dict.fromkeys(timed_out))} ran too long and were interrupted"
    return None


def _changed_locked_cells(course_root: Path, assignment: str, student: str) -> list[str]:
    """Locked and test cells the student edited or deleted (nbgrader put them back from the master copy)."""
    changed = []
    for release in sorted((course_root / "release" / assignment).glob("*.ipynb")):
        submitted = json.loads((course_root / "submitted" / student / assignment / release.name).read_text())
        sources = {_grade_id(c): _source(c) for c in submitted["cells"] if _grade_id(c)}
        for cell in json.loads(release.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("locked") and not meta.get("solution") and sources.get(meta["grade_id"]) != _source(cell):
                changed.append(meta["grade_id"])
    return changed


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _reason_from_log(log: str) -> str:
    """Turn nbgrader's error log for a failed notebook into one line a teacher can act on."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return ("kernel died: the notebook stopped its own kernel (exit(), quit(), os._exit() or a crash); "
                "nothing after that point could be graded")
    if "CellTimeoutError" in log or "Timeout waiting for" in log or "UnresponsiveKernelError" in log:
        return "timed out: a cell hung (for example inside an awaited coroutine) and the kernel did not answer"
    errors = re.findall(r"^\s*(\w+(?:Error|Exception)): (.*)$", log, flags=re.M)
    if errors:
        name, message = errors[-1]
        return f"grading failed: {name}: {message[:200]}"
    return "grading failed: " + (log.strip().splitlines() or ["no output from nbgrader"])[-1][:200]


def _read_scores(course_root: Path, assignment: str, student: str, result: SubmissionResult) -> None:
    """Fill result.scores / max_scores from the gradebook (autograded cells only)."""
    with Gradebook(_db_url(course_root)) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.cell.cell_type != "code":  # manually graded prose answers are not autograded
                    continue
                result.max_scores[grade.name] = grade.max_score
                result.scores[grade.name] = grade.auto_score or 0.0


def _db_url(course_root: Path) -> str:
    return f"sqlite:///{course_root / 'gradebook.db'}"


def print_summary(results: list[SubmissionResult]) -> None:
    """A short report: each student's score, then the submissions that need a teacher's attention."""
    for r in results:
        restored = f"   restored: {', '.join(r.restored_cells)}" if r.restored_cells else ""
        print(f"{r.student:30s} {r.score:5.1f} / {r.max_score:4.1f}   ({r.seconds:.1f} s){restored}")
    broken = [r for r in results if r.problem]
    if broken:
        print(f"\n{len(broken)} submission(s) need attention:")
        for r in broken:
            print(f"  {r.student}: {r.problem}")


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
