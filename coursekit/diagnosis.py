"""Why a submission needs attention, as pure functions of what grading holds: the submitted files, the exception
nbgrader stopped on, the graded notebooks and the records the course's preprocessors reported.

Each function returns a `Problem` (or None when there is nothing to say); `choose` picks the one the report shows.
"""
import sqlite3
from pathlib import Path

import nbformat

from .outcomes import FOR_REVIEW, CellChange, ChangeKind, Problem, ProblemKind

# SQLite's "database is locked" (SQLITE_BUSY): https://www.sqlite.org/rescode.html#busy
SQLITE_BUSY = 5

KERNEL_DIED = ("the notebook stopped or killed its own kernel (exit(), quit(), os._exit(), a signal or a crash); "
               "nothing after that point could be graded")
KERNEL_HUNG = "a cell hung (for example inside an awaited coroutine) and the kernel did not answer"
GRADEBOOK_BUSY = "the gradebook stayed locked by another writer; grade this student again"
CELLS_TIMED_OUT = "ran too long and were interrupted"
CELLS_OUT_OF_MEMORY = ("raised MemoryError (the kernel's limit is c.SandboxProvisioner.memory_limit); "
                       "the rest was graded")


def check_submission(course_root: Path, assignment: str, student: str) -> Problem | None:
    """What is wrong with the submitted files before nbgrader sees them (None when they look fine)."""
    from .submission_files import refusal

    folder = Path(course_root) / "submitted" / student / assignment
    if folder.exists() and (why := refusal(folder)):  # before anything reads through a link
        return Problem(ProblemKind.REFUSED, why)
    for source in sorted((Path(course_root) / "source" / assignment).glob("*.ipynb")):
        submitted = folder / source.name
        if not submitted.exists():
            return Problem(ProblemKind.MISSING, f"{source.name} was not submitted")
        try:
            nbformat.validate(nbformat.reads(submitted.read_text(encoding="utf-8"), as_version=4))
        except (ValueError, UnicodeDecodeError, nbformat.ValidationError, KeyError, AttributeError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            return Problem(ProblemKind.NOT_A_NOTEBOOK, f"{source.name} ({first_line[:200]})")
    return None


def from_exception(error: BaseException) -> Problem:
    """The problem behind the exception that stopped nbgrader on a notebook (or outside one)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbgrader.preprocessors.execute import UnresponsiveKernelError

    from .submission_files import SubmissionRefused

    chain = list(_chain(error))
    refused = next((e for e in chain if isinstance(e, SubmissionRefused)), None)
    if refused is not None:
        return Problem(ProblemKind.REFUSED, str(refused).split(" refused: ", 1)[-1])
    if any(isinstance(e, DeadKernelError) for e in chain):
        return Problem(ProblemKind.KERNEL_DIED, KERNEL_DIED)
    if any(isinstance(e, (CellTimeoutError, UnresponsiveKernelError, TimeoutError)) for e in chain):
        return Problem(ProblemKind.TIMED_OUT, KERNEL_HUNG)
    if any(_is_sqlite_busy(e) for e in chain):
        return Problem(ProblemKind.GRADEBOOK_BUSY, GRADEBOOK_BUSY)
    return Problem(ProblemKind.GRADING_FAILED, f"{type(error).__name__}: {str(error).strip()[:200]}")


def _chain(error: BaseException):
    """The exception and the ones it was raised from or during, each once."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _is_sqlite_busy(error: BaseException) -> bool:
    original = getattr(error, "orig", error)  # SQLAlchemy wraps the driver's exception
    return isinstance(original, sqlite3.OperationalError) and getattr(original, "sqlite_errorcode", None) == SQLITE_BUSY


def from_graded_cells(notebooks) -> Problem | None:
    """Cells nbgrader had to interrupt (timeouts) or that ran out of memory, in the graded notebooks."""
    timed_out, out_of_memory = [], []
    for notebook in notebooks:
        for index, cell in enumerate(notebook.cells):
            name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id") or f"#{index + 1}"
            for output in cell.get("outputs", []):
                if output.get("output_type") != "error":
                    continue
                if output.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
                    timed_out.append(name)
                elif output.get("ename") == "MemoryError":
                    out_of_memory.append(name)
    if timed_out:
        return Problem(ProblemKind.TIMED_OUT, CELLS_TIMED_OUT, cells=tuple(dict.fromkeys(timed_out)))
    if out_of_memory:
        return Problem(ProblemKind.OUT_OF_MEMORY, CELLS_OUT_OF_MEMORY, cells=tuple(dict.fromkeys(out_of_memory)))
    return None


def merge(problems: list[Problem]) -> list[Problem]:
    """Problems of the same kind and detail as one, naming all their cells (a flood in two cells is one problem)."""
    merged: dict[tuple, Problem] = {}
    for problem in problems:
        key = (problem.kind, problem.detail)
        if key in merged:
            cells = tuple(dict.fromkeys(merged[key].cells + problem.cells))
            merged[key] = Problem(problem.kind, problem.detail, cells)
        else:
            merged[key] = problem
    return list(merged.values())


def choose(*candidates: Problem | list[Problem] | None) -> Problem | None:
    """The first problem found, candidates in order of precedence (a list: its problems merged, in order)."""
    for candidate in candidates:
        if isinstance(candidate, list):
            candidate = next(iter(merge(candidate)), None)
        if candidate is not None:
            return candidate
    return None


def classify(reported: list[Problem], failure: BaseException | None, graded_notebooks) -> Problem | None:
    """The one problem of a graded submission, in order of precedence: tampering with grading (reported by the
    course's integrity checks), then a kernel whose processes ran out of memory (reported by the sandbox: the
    out-of-memory killer is why a kernel died, if it did), then the exception nbgrader stopped on, then what the
    preprocessors reported (output cut), then cells that were interrupted or ran out of memory. Problems for review
    (FOR_REVIEW) are not among them: they go to `reviews`."""
    first = (ProblemKind.TAMPERED, ProblemKind.OUT_OF_MEMORY)
    return choose(
        [p for p in reported if p.kind is ProblemKind.TAMPERED],
        [p for p in reported if p.kind is ProblemKind.OUT_OF_MEMORY],
        from_exception(failure) if failure is not None else None,
        [p for p in reported if p.kind not in first and p.kind not in FOR_REVIEW],
        from_graded_cells(graded_notebooks),
    )


def reviews(reported: list[Problem]) -> list[Problem]:
    """What a person should read in a graded submission, its score unchanged (*needs review*), merged by kind."""
    return merge([p for p in reported if p.kind in FOR_REVIEW])


def describe_changes(changes: list[CellChange]) -> list[str]:
    """What the student did to the notebook's structure, in the words a teacher reads in the summary."""
    lines = []
    for notebook in dict.fromkeys(c.notebook for c in changes):
        own = [c for c in changes if c.notebook == notebook]
        copies: dict[str, int] = {}
        for change in own:
            if change.kind is ChangeKind.COPIED:
                copies[change.cell] = copies.get(change.cell, 1) + 1
        lines += [f"cell {cell} appears {count} times (copied); only the last copy was graded"
                  for cell, count in copies.items()]
        lines += [str(c) for c in own if c.kind is ChangeKind.RETYPED]
        edited = list(dict.fromkeys(c.cell for c in own if c.kind is ChangeKind.EDITED))
        deleted = list(dict.fromkeys(c.cell for c in own if c.kind is ChangeKind.DELETED))
        if edited:
            lines.append(f"locked cell(s) edited, put back before grading: {', '.join(edited)}")
        if deleted:
            lines.append(f"cell(s) deleted, put back before grading: {', '.join(deleted)}")
        foreign = list(dict.fromkeys(c.cell for c in own if c.kind is ChangeKind.FOREIGN))
        if foreign:
            lines.append(f"cell(s) pasted from another notebook or release, graded as plain cells: {', '.join(foreign)}")
    return lines
