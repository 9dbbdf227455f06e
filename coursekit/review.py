"""Static review of what a student wrote: interpreter internals, found by reading the code, never by running it.

A check inside the student's kernel (coursekit.integrity) can be beaten by code that tells the grader's probes from
the tests. This layer does not depend on the interpreter telling the truth: it parses (`ast`) every code cell the
student wrote or added (answer cells, unlocked cells; not the locked and test cells the gradebook puts back) and
every Python file handed in beside the notebook, and flags the constructs that tampering with grading or reading
the hidden tests needs: IPython's shell and history, `sys`, frames, dynamic code, processes... (`RULES` in
coursekit.review_rules, one table, a reason per rule). Honest answers to this course need none of them
(tests/test_static_review.py reads every answer in tests/right_answers/ and solutions/ and finds nothing).

A flagged submission is *needs review* (ProblemKind.NEEDS_REVIEW), with cell and line: the score is unchanged, a
person reads the lines. `ReviewStudentCode` is the nbgrader preprocessor (configured in nbgrader_config.py, so it
runs in plain `nbgrader autograde` and in `coursekit grade`); `review_source` (coursekit.review_reader) and
`review_notebook` are plain functions a test calls without a kernel.

What a static read cannot see: code assembled at run time from innocent parts (it needs one of the flagged
builtins or attributes to run, which is flagged), and aliases the rules do not follow (`o = os; o.fork()`).

The review is three modules: the table (coursekit.review_rules), the reader of one source (coursekit.review_reader),
and this one, which picks the cells and files that are the student's and reports what the reader finds.
"""
import os
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from .cells import grade_id, hidden_test_delimiters, is_answer
from .outcomes import Problem, ProblemKind, report
from .review_reader import Finding, review_source


def is_students(cell, course_sources: set[str] = frozenset()) -> bool:
    """A code cell the student wrote or added: an answer cell, or any cell that is not locked (a cell the student
    added, or a copy of a course cell that grading turned into a plain cell), unless it is a course cell's source
    unchanged."""
    if cell.get("cell_type") != "code":
        return False
    if is_answer(cell):
        return True
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return not meta.get("locked") and not meta.get("grade") and _source(cell).strip() not in course_sources


def _source(cell) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)  # a notebook file may hold a list of lines


def review_notebook(nb, course_sources: set[str] = frozenset()) -> list[Finding]:
    """Findings in every code cell the student wrote or added, in notebook order."""
    findings = []
    for index, cell in enumerate(nb.cells):
        if is_students(cell, course_sources):
            findings += review_source(_source(cell), grade_id(cell) or f"#{index + 1}")
    return findings


def review_files(folder: Path) -> list[Finding]:
    """Findings in the Python files of a submission folder (symbolic links are not followed, nor read)."""
    findings = []
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):  # os.walk does not descend into linked folders
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() or path.suffix not in (".py", ".pyw", ".pth"):
                continue
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            findings += review_source(source, path.relative_to(folder).as_posix(), ipython=False)
    return findings


def as_problem(findings: list[Finding], limit: int = 12) -> Problem | None:
    """The findings as one *needs review* problem, naming cells (or files) and lines."""
    if not findings:
        return None
    shown = "; ".join(str(f) for f in findings[:limit])
    more = f"; and {len(findings) - limit} more" if len(findings) > limit else ""
    return Problem(ProblemKind.NEEDS_REVIEW, f"interpreter internals in what the student wrote (the score is "
                   f"unchanged; read these lines): {shown}{more}",
                   cells=tuple(dict.fromkeys(f.where for f in findings)))


def _strip_blocks(source: str, begin: str, end: str) -> str:
    """A master cell's source as students receive it: the lines between the delimiters removed."""
    kept, inside = [], False
    for line in source.splitlines(keepends=True):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "".join(kept)


class ReviewStudentCode(NbGraderPreprocessor):
    """At autograde, after the gradebook has put its cells back: report the interpreter internals in the cells the
    student wrote or added, and in the Python files of the submission, as *needs review* (coursekit.outcomes). The
    notebook and its score are unchanged."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        assignment, notebook, student = info.get("assignment"), info.get("notebook"), info.get("student")
        findings = review_notebook(nb, self._course_sources(assignment, notebook))
        folder = self._submitted_folder(assignment, student)
        if folder is not None and self._first_notebook(folder) == notebook:  # once per submission
            findings += review_files(folder)
        problem = as_problem(findings)
        if problem is not None:
            report(problem, resources, self.log)
        return nb, resources

    def _submitted_folder(self, assignment, student) -> Path | None:
        if not assignment or not student:
            return None
        coursedir = CourseDirectory(config=self.config)
        folder = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        return folder if folder.is_dir() else None

    @staticmethod
    def _first_notebook(folder: Path) -> str | None:
        names = sorted(p.stem for p in folder.glob("*.ipynb"))
        return names[0] if names else None

    def _course_sources(self, assignment, notebook) -> set[str]:
        """The sources of the master notebook's locked cells, as released (a copy of one is not the student's)."""
        if not assignment or not notebook:
            return set()
        coursedir = CourseDirectory(config=self.config)
        path = Path(coursedir.format_path(coursedir.source_directory, ".", assignment)) / f"{notebook}.ipynb"
        try:
            master = nbformat.read(str(path), as_version=4)
        except (OSError, ValueError):
            return set()
        begin, end = hidden_test_delimiters(self.config)
        sources = set()
        for cell in master.cells:
            if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
                sources |= {cell.source.strip(), _strip_blocks(cell.source, begin, end).strip()}
        return sources
