"""The Dask task: grade one submission on this Dask worker, the way a local run grades it (coursekit.jobs).

A task unpacks the course into the worker's own scratch folder (once per course and settings), writes the
submission into it and runs `coursekit.jobs.grade_job` with a grading process of its own (coursekit.worker's
WorkerProcess, started in that folder and kept for the next tasks): the same deadline, the same kill of the grading
process with its kernels, the same cleanup and the same result as a local worker. Nothing runs in the Dask worker's
own threads but the waiting: no working folder changes, no kernel of nbgrader's in this process, so stopping a run
kills the grading process's tree (psutil), never processes picked by name.

State per Dask worker process (module level: a task runs in one of its threads, one at a time under `_lock`): the
grading processes, the runs the driver stopped and the run being graded.
"""
import contextlib
import hashlib
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .cluster_env import ClusterError, EnvironmentMismatch, differences, environment
from .config import course_config
from .jobs import grade_job, guard_settings
from .worker import WorkerProcess


def _course(files: dict[str, bytes]) -> dict[str, bytes]:
    """The course task: its result is the course's files (a task rather than scattered data, so it can be rebuilt)."""
    return files


_lock = threading.Lock()  # one submission at a time per Dask worker process
_graders: dict[tuple, tuple[Path, WorkerProcess]] = {}  # (course, settings) -> its folder and grading process
_stopped_runs: set[str] = set()
_current: tuple[str, WorkerProcess] | None = None  # the run whose submission is being graded, and its grader
_my_environment: dict[str, str] | None = None


def grade_submission(course: dict[str, bytes], course_key: str, assignment: str, student: str,
                     files: dict[str, bytes], setup, course_id: str, deadline: float, expected: dict[str, str],
                     packages: list[str], run_id: str) -> dict:
    """The task: grade one submission on this worker (coursekit.jobs.grade_job); returns its SubmissionResult, the
    autograded files, and what it cost."""
    global _my_environment, _current
    from distributed import get_worker

    if _my_environment is None:
        _my_environment = environment(packages)
    wrong = differences(expected, _my_environment)
    if wrong:
        raise EnvironmentMismatch(f"worker {get_worker().address} has another environment than the driver; it graded "
                                  f"nothing: {'; '.join(wrong)}")
    db_url = setup.config.CourseDirectory.db_url
    with _lock:
        if run_id in _stopped_runs:
            raise ClusterError("this grading run was stopped")
        folder = _course_folder(course, course_key, setup)
        if not guard_settings(course_config(folder, setup.config)).unsafe_no_sandbox:
            from . import sandbox

            if reason := sandbox.unavailable_reason():
                raise EnvironmentMismatch(f"worker {get_worker().address} cannot sandbox the students' kernels; it "
                                          f"graded nothing: {reason}")
        submitted = folder / "submitted" / student / assignment
        autograded = folder / "autograded" / student / assignment
        for stale in (submitted.parent, autograded.parent):
            shutil.rmtree(stale, ignore_errors=True)
        for name, content in files.items():
            path = submitted / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if not files:
            submitted.mkdir(parents=True, exist_ok=True)
        grader = _grader(folder, course_key, setup)
        cpu = _tree_cpu(grader)
        started = time.perf_counter()
        _current = (run_id, grader)
        try:
            with _submission_lock(db_url, course_id, assignment, student):
                result = grade_job(grader, folder, assignment, student, deadline)
        finally:
            _current = None
        answer = {
            "result": result, "worker": get_worker().address, "seconds": time.perf_counter() - started,
            "cpu_seconds": _tree_cpu(grader) - cpu,
            "autograded": {p.relative_to(autograded).as_posix(): p.read_bytes()
                           for p in sorted(autograded.rglob("*")) if p.is_file()} if autograded.is_dir() else {},
        }
        for done in (submitted.parent, autograded.parent):
            shutil.rmtree(done, ignore_errors=True)
        return answer


def _key(course_key: str, setup) -> tuple:
    import pickle

    return course_key, hashlib.sha256(pickle.dumps(setup)).hexdigest()


def _course_folder(course: dict[str, bytes], course_key: str, setup) -> Path:
    """This worker's copy of the course, in its own scratch folder (Dask removes it when the worker stops)."""
    key = _key(course_key, setup)
    if key not in _graders:
        from distributed import get_worker

        folder = Path(tempfile.mkdtemp(prefix=f"{course_key}-", dir=get_worker().local_directory))
        for name, content in course.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        _graders[key] = (folder, None)
    return _graders[key][0]


def _grader(folder: Path, course_key: str, setup) -> WorkerProcess:
    """The grading process for this course and settings: started on first use, again after it was killed."""
    key = _key(course_key, setup)
    grader = _graders[key][1]
    if grader is None or grader.dead:
        if grader is not None:
            grader.close()
        grader = WorkerProcess(folder, setup)
        _graders[key] = (folder, grader)
    return grader


def _tree_cpu(grader: WorkerProcess) -> float:
    """CPU seconds of the grading process and the children it reaped (not the sandboxed kernels: see the README)."""
    import psutil

    try:
        times = psutil.Process(grader.process.pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system + times.children_user + times.children_system


@contextlib.contextmanager
def _submission_lock(db_url: str, course_id: str, assignment: str, student: str):
    """A PostgreSQL advisory lock on this submission for as long as it is graded (nothing to do for SQLite)."""
    if not db_url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha256(f"{course_id}\0{assignment}\0{student}".encode()).digest()[:8], "big",
                         signed=True)
    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    finally:
        engine.dispose()


def stop_run(run_id: str) -> bool:
    """Run on every worker when the driver stops (Ctrl+C): no new task of this run starts, and a running one loses
    its grading process and kernels (nbgrader then saves nothing of the notebook). True if one was stopped."""
    _stopped_runs.add(run_id)
    current = _current
    if current is not None and current[0] == run_id:
        current[1].kill()
        return True
    return False
