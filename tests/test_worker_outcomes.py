"""What `coursekit grade` reports when a grading process crashes, runs past its deadline, or coursekit itself fails,
and that nothing of it is lost: the traceback, and what the worker and its kernels printed. No kernel and no
nbgrader: each worker here is a stand-in process that speaks the real protocol (coursekit.worker), in the real pool
(coursekit.grading). Under a second each.
"""
import functools
import sys

import psutil
import pytest

from coursekit import diagnosis, grading, sandbox
from coursekit.__main__ import main
from coursekit.outcomes import ProblemKind
from coursekit.worker import WorkerProcess

STAND_IN = """
import os, sys, time
from multiprocessing.connection import Connection
from coursekit.worker import WorkerAnswer, serve

def grade(state, job):
    print(f"stand-in grading {job.student}", file=sys.stderr, flush=True)
    if job.student.startswith("crashes"):
        print("Fatal Python error: the stand-in crashed", file=sys.stderr, flush=True)
        os._exit(70)
    if job.student.startswith("hangs"):
        time.sleep(600)
    return WorkerAnswer(job.student, scores={"q": 1.0}, max_scores={"q": 1.0}, log=f"nbgrader's log of {job.student}")

serve(Connection(int(sys.argv[1])), lambda setup: None, grade)
"""


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course whose students are graded by stand-in workers: students named crashes-* crash it, hangs-* hang."""
    script = tmp_path / "stand_in_worker.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(grading, "WorkerProcess", functools.partial(WorkerProcess, command=[sys.executable, str(script)]))
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)
    folder = tmp_path / "course"
    (folder / "source" / "a").mkdir(parents=True)

    def with_students(*students):
        for student in students:
            (folder / "submitted" / student / "a").mkdir(parents=True)
        return folder
    return with_students


def test_a_crashed_worker_is_reported_with_its_last_words_and_the_class_goes_on(course):
    folder = course("ada", "crashes-1", "grace")
    results = {r.student: r for r in grading.grade_assignment(folder, "a", config={"Grading": {"jobs": 1}})}
    crashed = results["crashes-1"]
    assert crashed.problem.kind is ProblemKind.CRASHED and "exit code 70" in crashed.problem.detail
    assert "the stand-in crashed" in crashed.problem.detail  # its last words
    assert "stand-in grading crashes-1" in crashed.output and "stand-in grading ada" not in crashed.output
    # the one worker was replaced: the students before and after it were graded, each with its own output
    for student in ("ada", "grace"):
        assert results[student].problem is None and results[student].scores == {"q": 1.0}
        assert results[student].output.strip() == f"stand-in grading {student}"


def test_a_submission_past_its_deadline_is_stopped_and_its_worker_killed(course):
    folder = course("ada", "hangs-1")
    worker = WorkerProcess(folder, None, command=grading.WorkerProcess.keywords["command"])
    pid = worker.process.pid
    assert grading.grade_job(worker, folder, "a", "ada", deadline=60).problem is None  # the worker is up
    result = grading.grade_job(worker, folder, "a", "hangs-1", deadline=0.5)
    assert result.problem.kind is ProblemKind.TIMED_OUT and "was stopped" in result.problem.detail
    assert "stand-in grading hangs-1" in result.output
    assert worker.dead and worker.process.returncode == -9 and not psutil.pid_exists(pid)  # killed, and reaped
    worker.close()


def test_a_failure_of_coursekit_itself_keeps_its_traceback_and_the_class_goes_on(course, monkeypatch):
    folder = course("ada", "grace")
    real = diagnosis.check_submission

    def buggy(course_root, assignment, student):
        if student == "ada":
            raise KeyError("a bug of ours")
        return real(course_root, assignment, student)
    monkeypatch.setattr(diagnosis, "check_submission", buggy)
    results = {r.student: r for r in grading.grade_assignment(folder, "a")}
    failed = results["ada"]
    assert failed.problem.kind is ProblemKind.GRADING_FAILED and "KeyError" in failed.problem.detail
    assert "Traceback (most recent call last)" in failed.log and "in buggy" in failed.log
    assert results["grace"].problem is None


def test_verbose_and_the_log_file_show_the_traceback_and_the_output(course, monkeypatch, capsys, tmp_path):
    folder = course("ada", "crashes-2")
    monkeypatch.setattr(diagnosis, "check_submission", lambda *args: (_ for _ in ()).throw(KeyError("a bug of ours"))
                        if args[2] == "ada" else None)
    assert main(["grade", "a", f"--course={folder}", "--no-progress", "--jobs=1"]) == 1
    quiet = capsys.readouterr().out
    assert "Traceback" not in quiet and "--verbose" in quiet

    log = tmp_path / "grading.log"
    assert main(["grade", "a", f"--course={folder}", "--no-progress", "--jobs=1", "--verbose", f"--log-file={log}"]) == 1
    shown = capsys.readouterr().out
    for text in (shown, log.read_text()):
        assert "===== ada: grading failed: KeyError" in text and "Traceback (most recent call last)" in text
        assert "===== crashes-2: crashed" in text and "Fatal Python error: the stand-in crashed" in text


def test_both_executors_run_the_same_job_and_import_no_cycle():
    """The local pool and the Dask task grade through coursekit.jobs.grade_job; the Dask side never imports the
    local pool (coursekit.grading imports coursekit.cluster only when --dask is given)."""
    import ast
    from pathlib import Path

    from coursekit import cluster_task, jobs

    assert grading.grade_job is jobs.grade_job and cluster_task.grade_job is jobs.grade_job
    folder = Path(jobs.__file__).parent
    for name in ("jobs", "cluster", "cluster_task", "cluster_env", "worker", "grade_worker"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert "grading" not in imported, f"coursekit.{name} imports coursekit.grading"
