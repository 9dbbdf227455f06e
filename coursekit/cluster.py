"""Grade a class on a Dask cluster: `python -m coursekit grade ASSIGNMENT --dask ADDRESS` (or `--dask local:N`).

The driver (the instructor's machine, with the course folder) sends one Dask task per submission. A worker shares
no filesystem with the driver: each task carries the student's submitted files, and depends on one small "course"
task that carries nbgrader_config.py and source/<assignment>/ (kept by the scheduler, so a lost copy is rebuilt).
Everything else, the Python packages and coursekit itself, must be in the worker's environment, in the same
versions as on the driver: the driver checks every worker before sending any submission, and each task checks
again (for workers that join later) before it grades.

On the worker, a task (coursekit.cluster_task) unpacks the course into a local folder, writes the submission into
it, and grades it with the job a local run uses (coursekit.jobs.grade_job): a grading process of its own, started
in that folder and kept for the next tasks, running nbgrader's Autograde converter configured by the course's
configuration (coursekit.config), with the same deadline and kill. nbgrader writes the grades straight into the
gradebook, which must therefore be a server all workers reach (PostgreSQL). The task returns the submission's result
and the autograded notebooks; the driver writes autograded/<student>/<assignment>/ and reports as a local run does.
Whether a worker may grade at all (its packages, its sandbox) is coursekit.cluster_env.

Faults:
- A worker that dies mid-submission (killed, out of memory, machine lost): Dask runs the task again on another
  worker (up to `distributed.scheduler.allowed-failures` times, 3 by default; then the submission is reported as
  crashed). nbgrader's autograde is idempotent per submission (it updates the submission's rows, never adds a
  second), and a PostgreSQL advisory lock per submission makes sure two attempts never write at the same time
  (a worker that was only cut off from the scheduler may still be running it). The lock dies with the worker's
  connection.
- A worker whose packages differ from the driver's: EnvironmentMismatch, naming the worker and the packages,
  before any submission is sent (or, for a worker that joins later, before that task grades anything).
- Ctrl+C on the driver: the driver cancels every task, tells the workers to stop this run (their grading processes
  and kernels are killed, so a running notebook fails at once and nbgrader saves none of its grades) and re-raises. A
  submission is then graded completely or keeps what it had before this run: nbgrader saves a notebook's grades
  only after all its cells ran.
"""
import contextlib
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .cluster_env import (ClusterError, EnvironmentMismatch, check_workers, checked_packages,  # noqa: F401 (API)
                          environment)
from .cluster_task import _course, grade_submission, stop_run  # noqa: F401 (the tasks the driver sends)
from .config import course_config
from .jobs import Grading, guard_settings
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import WorkerSetup

# Dask configuration recommended for grading workers (README). Dask's statistical profiler samples every worker
# thread's stack every 10 ms; on a task that runs nbgrader for seconds it cost ~0.8 s of CPU per Section 1
# submission (5.6 s -> 4.8 s, benchmarks/grade_cluster.py). As environment variables:
# DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


@dataclass
class TaskStats:
    """What one submission's task cost, as measured on the worker that graded it (for the benchmark)."""

    student: str
    worker: str
    seconds: float  # wall time of the job on the worker
    cpu_seconds: float  # CPU of the grading process and what it reaped (not the sandboxed kernels: see the README)
    driver_seconds: float = 0.0  # the driver's share: receiving the result, writing autograded/, the checks


def grade_on_dask(course_root: Path, assignment: str, students: list[str], address, config=None, progress=None,
                  stats: list[TaskStats] | None = None, connect_timeout: float = 60):
    """Grade `students`' submissions of `assignment` on a Dask cluster: `address` is its scheduler's address, or
    "local:N" (start N local worker processes for this run), or a connected distributed.Client (Dask Gateway's
    `cluster.get_client()`, a dask-jobqueue or dask-kubernetes cluster's), which stays open.

    config: settings on top of the course's configuration (coursekit.config), as for a local run (grade_assignment).
    Returns coursekit.outcomes.SubmissionResult's in the order of `students`, as grade_assignment does; writes
    autograded/ in course_root. Raises ClusterError (EnvironmentMismatch) before grading anything when the cluster
    cannot grade this class.
    """
    from distributed import as_completed

    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    course_root = Path(course_root).resolve()
    overrides = Config(config or {})
    config = course_config(course_root, overrides)
    settings = Grading(config=config)
    directory = CourseDirectory(config=config)
    db_url, course_id = _usable_db_url(directory.db_url), directory.course_id
    local = isinstance(address, str) and address.startswith("local:")
    if db_url.startswith("sqlite") and not local:
        raise ClusterError(f"the gradebook is a SQLite file ({db_url}), which Dask workers on other machines cannot "
                           "write: give a PostgreSQL gradebook, --db postgresql+psycopg://USER:PASSWORD@HOST/DB "
                           "(see README, 'Grading on a cluster')")
    _check_gradebook(db_url, course_id, assignment)
    deadline = settings.deadline_for(len(list((course_root / "source" / assignment).glob("*.ipynb"))))
    # What a local worker process gets, with the gradebook made explicit; the course folder is the worker's own.
    overrides.CourseDirectory.db_url = db_url
    overrides.CourseDirectory.pop("root", None)
    setup = WorkerSetup(overrides, settings.sqlite_busy_timeout)
    packages = checked_packages()
    expected = environment(packages)
    run_id = uuid.uuid4().hex[:12]

    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_connect(address, connect_timeout))
        try:
            client.wait_for_workers(1, timeout=connect_timeout)
        except TimeoutError:
            raise ClusterError(f"no Dask worker joined the scheduler within {connect_timeout:.0f} s") from None
        check_workers(client, expected, packages, check_sandbox=not guard_settings(config).unsafe_no_sandbox)

        course = _course_files(course_root, assignment)
        course_key = "coursekit-course-" + hashlib.sha256(
            b"".join(k.encode() + b"\0" + v for k, v in sorted(course.items()))).hexdigest()[:16]
        course_future = client.submit(_course, course, key=course_key, pure=False)
        futures = {}
        results: dict[str, object] = {}
        try:
            for student in students:
                futures[client.submit(
                    grade_submission, course_future, course_key, assignment, student,
                    _submission_files(course_root, assignment, student), setup, course_id, deadline,
                    expected, packages, run_id, key=f"coursekit-grade-{run_id}-{student}", pure=False)] = student
            for future in as_completed(futures):
                student = futures[future]
                started = time.perf_counter()
                result = _result(future, course_root, assignment, student, stats)
                if stats and stats[-1].student == student:
                    stats[-1].driver_seconds = time.perf_counter() - started
                results[student] = result
                if progress is not None:
                    progress(len(results), len(students), result)
        except BaseException:  # Ctrl+C, or a worker with another environment: stop the whole run
            client.cancel(list(futures))
            with contextlib.suppress(Exception):
                client.run(stop_run, run_id)
            raise
        finally:
            client.cancel([course_future])
    return [results[s] for s in students]


def _result(future, course_root: Path, assignment: str, student: str, stats) -> SubmissionResult:
    from distributed import KilledWorker

    from . import diagnosis

    try:
        outcome = future.result()
    except EnvironmentMismatch:
        raise
    except KilledWorker as error:  # the job's own deadline and crash handling ran on the workers; they all died
        died = f"every Dask worker that ran it died ({str(error).splitlines()[0][:300]}); nothing could be graded"
        return SubmissionResult(student, problem=diagnosis.check_submission(course_root, assignment, student)
                                or Problem(ProblemKind.CRASHED, died))
    except Exception as error:  # a bug of ours on the worker must not lose the rest of the class, nor its traceback
        import traceback  # Dask re-raises the worker's exception with the worker's traceback

        return SubmissionResult(student, problem=Problem(ProblemKind.GRADING_FAILED, f"{type(error).__name__}: {error}"),
                                log="".join(traceback.format_exception(error)))
    _write_autograded(course_root, assignment, student, outcome["autograded"])
    if stats is not None:
        stats.append(TaskStats(student, outcome["worker"], outcome["seconds"], outcome["cpu_seconds"]))
    return outcome["result"]


@contextlib.contextmanager
def _connect(address, timeout: float):
    from distributed import Client, LocalCluster

    if isinstance(address, Client):  # the caller's (Dask Gateway, dask-jobqueue, dask-kubernetes): theirs to close
        yield address
        return
    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError:
            raise ClusterError(f"--dask local:N needs a number of workers, not {address!r}") from None
        import dask

        with dask.config.set(WORKER_CONFIG), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=timeout)
    except OSError as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    with client:
        yield client


def _usable_db_url(db_url: str) -> str:
    """The gradebook URL, unless SQLAlchemy could not open it here."""
    if db_url.startswith("postgresql://"):
        try:
            import psycopg2  # noqa: F401 (SQLAlchemy's default driver for postgresql://)
        except ImportError:
            raise ClusterError(f"{db_url.split('@')[-1]}: SQLAlchemy reads postgresql:// as psycopg2, which is not "
                               "installed; the course pins psycopg 3: write postgresql+psycopg://...") from None
    return db_url


def _check_gradebook(db_url: str, course_id: str, assignment: str) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url, course_id) as gradebook:
            gradebook.find_assignment(assignment)
    except MissingEntry:
        raise ClusterError(f"the gradebook does not know {assignment}: run `nbgrader generate_assignment {assignment} "
                           "--db URL` once with this gradebook") from None
    except Exception as error:
        if type(error).__module__.startswith(("sqlalchemy", "psycopg")):
            raise ClusterError(f"cannot open the gradebook: {str(error).splitlines()[0]}") from None
        raise


def _course_files(course_root: Path, assignment: str) -> dict[str, bytes]:
    """What a worker needs of the course besides the submission: nbgrader_config.py and source/<assignment>/."""
    files = {"nbgrader_config.py": (course_root / "nbgrader_config.py").read_bytes()}
    source = course_root / "source" / assignment
    for path in sorted(source.rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            files[path.relative_to(course_root).as_posix()] = path.read_bytes()
    return files


def _submission_files(course_root: Path, assignment: str, student: str) -> dict[str, bytes]:
    """The submission's regular files: a symbolic link is neither followed nor sent (the driver refuses such a
    submission, coursekit.submission_files), so a link to source/ cannot bring the master notebook in."""
    folder = course_root / "submitted" / student / assignment
    if folder.is_symlink():
        return {}
    files = {}
    for root, _, names in os.walk(folder):  # does not descend into linked folders
        for name in sorted(names):
            path = Path(root) / name
            if not path.is_symlink() and path.is_file():
                files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _write_autograded(course_root: Path, assignment: str, student: str, files: dict[str, bytes]) -> None:
    folder = course_root / "autograded" / student / assignment
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
