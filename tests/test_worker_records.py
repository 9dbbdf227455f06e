"""The grading worker's answer carries what the course's preprocessors reported into nbgrader's resources
(coursekit.outcomes.report), from both of Autograde's passes, including what a preprocessor reported just before
it raised, and nothing of the job before. nbgrader's own Autograde converter (grade_worker.CourseAutograde) runs
stand-in preprocessors: no kernel, no gradebook. Milliseconds.
"""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.converters import Autograde
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets.config import Config

from coursekit import grade_worker
from coursekit.outcomes import CellChange, ChangeKind, Problem, ProblemKind, report
from coursekit.worker import GradeJob, WorkerSetup


class ReportsACopiedCell(NbGraderPreprocessor):
    """Sanitizing pass: a change, as DeduplicateCells reports one."""

    def preprocess(self, nb, resources):
        report(CellChange(ChangeKind.COPIED, "q1", resources["nbgrader"]["notebook"]), resources, self.log)
        return nb, resources


class ReportsThenRaises(NbGraderPreprocessor):
    """Autograding pass: for a student named breaks-*, a problem reported, then an exception (as GuardedExecute
    reports tampering in its `finally` while nbclient's DeadKernelError goes up)."""

    def preprocess(self, nb, resources):
        student = resources["nbgrader"]["student"]
        if student.startswith("breaks"):
            report(Problem(ProblemKind.TAMPERED, f"{student} tampered"), resources, self.log)
            raise RuntimeError("the preprocessor failed after reporting")
        return nb, resources


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """A grading worker's nbgrader app for a course whose Autograde runs only the stand-ins above."""
    # No gradebook: what init_assignment checks and records there (student, assignment, timestamp) is not at stake.
    monkeypatch.setattr(Autograde, "init_assignment", lambda self, assignment_id, student_id: None)
    monkeypatch.setattr(grade_worker, "read_scores", lambda *args: ({}, {}))
    for student in ("breaks-1", "ada"):
        folder = tmp_path / "submitted" / student / "a"
        folder.mkdir(parents=True)
        nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), folder / "nb.ipynb")
    config = Config()
    config.Autograde.sanitize_preprocessors = [ReportsACopiedCell]
    config.Autograde.autograde_preprocessors = [ReportsThenRaises]
    return grade_worker.autograde_app(tmp_path, WorkerSetup(config, sqlite_busy_timeout=30.0))


def test_a_record_reported_before_a_preprocessor_raised_is_in_the_worker_s_answer(worker):
    answer = grade_worker.grade(worker, GradeJob("a", "breaks-1"))
    assert answer.problem == Problem(ProblemKind.TAMPERED, "breaks-1 tampered"), answer.log
    assert "the preprocessor failed after reporting" in answer.log  # it did raise
    assert answer.changes == [CellChange(ChangeKind.COPIED, "q1", "nb")]  # from the sanitizing pass before it


def test_the_next_job_has_its_own_records_only(worker):
    grade_worker.grade(worker, GradeJob("a", "breaks-1"))
    answer = grade_worker.grade(worker, GradeJob("a", "ada"))
    assert answer.problem is None, answer.log
    assert answer.changes == [CellChange(ChangeKind.COPIED, "q1", "nb")]
