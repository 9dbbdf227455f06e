"""A grading worker process: `python -m coursekit.grade_worker FD`, run in a course folder by coursekit.grading.

It loads nbgrader and the course's nbgrader_config.py once, then grades one job at a time with nbgrader's own
Autograde converter in this process: the same code, configuration and gradebook writes as
`nbgrader autograde ASSIGNMENT --student STUDENT --force`, without paying for a new Python process and nbgrader's
imports per student. The protocol (over file descriptor FD) is in coursekit.worker.

Each answer is typed: the scores as the gradebook holds them, the problem classified from what this process holds
(the exception nbgrader stopped on, the graded notebooks in memory, the preprocessors' records), and the changes
grading put right as the course's preprocessors reported them.

nbgrader workarounds here, and what would make each removable:
- `CourseAutograde` keeps the exception and the graded notebooks that nbgrader 0.9.6's converter catches and logs
  but does not return (`convert_notebooks` turns every failure into a log line and one NbGraderException).
  Removable if a nbgrader release returns per-notebook outcomes.
- `with_busy_timeout`: nbgrader 0.9.6's Gradebook opens SQLite with pysqlite's 5 s lock timeout and no setting for
  it. Removable if a release lets the gradebook take connection arguments.
"""
import contextlib
import io
import logging
import os
import re
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import AutogradeApp
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from tornado.log import LogFormatter

from . import diagnosis, submission_files
from .config import course_config
from .outcomes import CellChange, Problem, ProblemKind, Record, Records, Timing
from .worker import GradeJob, WorkerAnswer, WorkerSetup, serve


def with_busy_timeout(db_url: str, seconds: float) -> str:
    """A SQLite URL waits up to `seconds` for another writer (pysqlite's default is 5 s)."""
    if not db_url.startswith("sqlite") or re.search(r"[?&]timeout=", db_url):
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={seconds:g}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True).start()
    serve(Connection(int(argv[0])), lambda setup: autograde_app(os.getcwd(), setup), grade)
    return 0


def _end_with_parent(parent: int) -> None:
    """A worker whose parent died (a Dask worker killed mid-submission, `coursekit grade` killed) ends at once, with
    its kernels: another worker may be grading the same submission again. (A parent that ends normally closes the
    connection first: the worker then exits after its job.)"""
    import psutil

    while os.getppid() == parent:
        time.sleep(0.2)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    os._exit(1)


def autograde_app(course_root, setup: WorkerSetup):
    """nbgrader's autograde application for the course in `course_root`: its configuration as coursekit.config
    loads it (the same as `nbgrader autograde --force` run there), the settings coursekit passed on top."""
    config = course_config(course_root, setup.config)
    config.BaseConverter.force = True
    # Not AutogradeApp.initialize(): it would read the config files again (twice: the working folder's and
    # CourseDirectory.root's nbgrader_config.py) and parse this process's command line. The converter needs the
    # app's configuration, log and course folder only.
    app = AutogradeApp(config=config)
    app.coursedir = CourseDirectory(parent=app)
    app.log.setLevel(logging.INFO)  # as the command line shows it; DEBUG would format every kernel message
    app.coursedir.db_url = with_busy_timeout(app.coursedir.db_url, setup.sqlite_busy_timeout)
    return app


def grade(app, job: GradeJob) -> WorkerAnswer:
    """Autograde one student's submission; never raises (an error of nbgrader's is this student's problem)."""
    started = time.perf_counter()
    answer = WorkerAnswer(job.student)
    # A link in the submission: nbgrader would read through it (a link to a device or a pipe never ends), so it is
    # refused before nbgrader opens anything; the gradebook is not touched (coursekit.submission_files).
    folder = app.coursedir.format_path(app.coursedir.submitted_directory, job.student, job.assignment)
    if why := submission_files.refusal(folder):
        answer.problem = Problem(ProblemKind.REFUSED, why)
        answer.seconds = time.perf_counter() - started
        return answer
    records: list[Record] = []
    try:
        answer.log, failure, graded, records = _autograde(app, job)
        answer.scores, answer.max_scores = read_scores(app.coursedir.db_url, app.coursedir.course_id,
                                                       job.assignment, job.student)
    except Exception as error:  # nbgrader itself failed outside a notebook (or the gradebook did)
        failure, graded = error, []
        answer.log += traceback.format_exc()
    reported = [r for r in records if isinstance(r, Problem)]
    answer.problem = diagnosis.classify(reported, failure, graded)
    answer.reviews = diagnosis.reviews(reported)
    answer.changes = [r for r in records if isinstance(r, CellChange)]
    answer.timings = [r for r in records if isinstance(r, Timing)]
    answer.seconds = time.perf_counter() - started
    return answer


class CourseAutograde(Autograde):
    """nbgrader's Autograde, keeping what it already has in hand: the first error, each graded notebook, and the
    records the course's preprocessors reported (coursekit.outcomes.report)."""

    def init_single_notebook_resources(self, notebook_filename):
        """Both passes over each notebook report into this converter's list, which nbconvert's copies of the
        resources share (outcomes.Records): the records of a preprocessor that then raised are kept too."""
        resources = super().init_single_notebook_resources(notebook_filename)
        resources["coursekit"] = {"records": self.records}
        return resources

    def init_assignment(self, assignment_id, student_id):
        with self._keep_failure():
            return super().init_assignment(assignment_id, student_id)

    def convert_single_notebook(self, notebook_filename):
        with self._keep_failure():
            return super().convert_single_notebook(notebook_filename)

    def write_single_notebook(self, output, resources):
        if not self._sanitizing:  # the second pass: the executed, graded notebook
            self.graded.append(nbformat.reads(output, as_version=4))
        return super().write_single_notebook(output, resources)

    @contextlib.contextmanager
    def _keep_failure(self):
        try:
            yield
        except Exception as error:
            self.failure = self.failure or error
            raise


def _autograde(app, job: GradeJob):
    """Run nbgrader's Autograde for one student: (its log, the first exception it stopped on, graded notebooks,
    the records its preprocessors reported)."""
    app.coursedir.assignment_id = job.assignment
    app.coursedir.student_id = job.student
    converter = CourseAutograde(coursedir=app.coursedir, parent=app)
    converter.failure, converter.graded, converter.records = None, [], Records()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(LogFormatter(fmt="[%(levelname)s] %(message)s"))
    converter.log.addHandler(handler)
    try:
        converter.start()
    except Exception as error:
        converter.failure = converter.failure or error
        buffer.write(traceback.format_exc())
    finally:
        converter.log.removeHandler(handler)
    return buffer.getvalue(), converter.failure, converter.graded, converter.records


def read_scores(db_url: str, course_id: str, assignment: str, student: str) -> tuple[dict, dict]:
    """Automatic scores and points of the student's autograded test cells, as nbgrader's gradebook holds them now."""
    scores, max_scores = {}, {}
    with Gradebook(db_url, course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return scores, max_scores
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.cell.cell_type != "code":  # manually graded prose answers are not autograded
                    continue
                max_scores[grade.name] = grade.max_score
                scores[grade.name] = grade.auto_score or 0.0
    return scores, max_scores


if __name__ == "__main__":
    sys.exit(main())
