"""Grade a class on a Dask cluster: `python -m coursekit grade ASSIGNMENT --dask ADDRESS` (or `--dask local:N`).

The driver (the instructor's machine, with the course folder) sends one Dask task per submission. A worker shares
no filesystem with the driver: each task carries the student's submitted files, and depends on one small "course"
task that carries nbgrader_config.py and source/<assignment>/ (kept by the scheduler, so a lost copy is rebuilt).
Everything else, the Python packages and coursekit itself, must be in the worker's environment, in the same
versions as on the driver: the driver checks every worker before sending any submission, and each task checks
again (for workers that join later) before it grades.

On the worker, a task unpacks the course into a local folder (once per worker and course), writes the submission
into it, and grades it with coursekit.grade_worker's own `grade(app, GradeJob)`: nbgrader's Autograde
converter, configured by the course's nbgrader_config.py (sandbox, output cap, memory limit, restored cells), the
app loaded once per worker process. nbgrader writes the grades straight into the gradebook, which must therefore be
a server all workers reach (PostgreSQL). The task returns nbgrader's answer and the autograded notebooks; the
driver writes autograded/<student>/<assignment>/ and builds the same per-student results, summary and report as a
local run (coursekit.grading).

Faults:
- A worker that dies mid-submission (killed, out of memory, machine lost): Dask runs the task again on another
  worker (up to `distributed.scheduler.allowed-failures` times, 3 by default; then the submission is reported as
  crashed). nbgrader's autograde is idempotent per submission (it updates the submission's rows, never adds a
  second), and a PostgreSQL advisory lock per submission makes sure two attempts never write at the same time
  (a worker that was only cut off from the scheduler may still be running it). The lock dies with the worker's
  connection.
- A worker whose packages differ from the driver's: EnvironmentMismatch, naming the worker and the packages,
  before any submission is sent (or, for a worker that joins later, before that task grades anything).
- Ctrl+C on the driver: the driver cancels every task, tells the workers to stop this run (their grading kernels
  are killed, so a running notebook fails at once and nbgrader saves none of its grades) and re-raises. A
  submission is then graded completely or keeps what it had before this run: nbgrader saves a notebook's grades
  only after all its cells ran.
"""
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, when coursekit runs from a checkout
from .config import course_config
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import WorkerDied, WorkerSetup, WorkerTimedOut

# Packages whose versions decide a grade or whether the worker can run the task at all. requirements.txt's
# packages (what students' kernels import) are added to these.
CHECKED_PACKAGES = ["nbgrader", "nbconvert", "nbclient", "nbformat", "ipykernel", "ipython", "jupyter_client",
                    "traitlets", "sqlalchemy", "alembic", "psycopg", "dask", "distributed", "cloudpickle", "msgpack",
                    "tornado"]


# Dask configuration recommended for grading workers (README). Dask's statistical profiler samples every worker
# thread's stack every 10 ms; on a task that runs nbgrader for seconds it cost ~0.8 s of CPU per Section 1
# submission (5.6 s -> 4.8 s, benchmarks/grade_cluster.py). As environment variables:
# DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}


class ClusterError(RuntimeError):
    """The class cannot be graded on this cluster (the message says why and what to do)."""


class EnvironmentMismatch(ClusterError):
    """A worker's packages differ from the driver's."""


# ----------------------------------------------------------------------------------------------------------------
# What a worker's environment is


def checked_packages() -> list[str]:
    names = list(CHECKED_PACKAGES)
    requirements = _CHECKOUT / "requirements.txt"
    if requirements.exists():
        for line in requirements.read_text().splitlines():
            match = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
            if match and not line.lstrip().startswith(("#", "-")):
                names.append(match.group(1))
    return sorted(set(names), key=str.lower)


def environment(packages: list[str]) -> dict[str, str]:
    """Name -> version (or "not installed") of `packages`, plus Python's version and a hash of coursekit's code."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": "%d.%d.%d" % sys.version_info[:3]}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    code = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    found["coursekit (code)"] = code.hexdigest()[:12]
    return found


def differences(expected: dict[str, str], found: dict[str, str]) -> list[str]:
    return [f"{name} {found.get(name, 'not installed')} (driver: {version})"
            for name, version in expected.items() if found.get(name) != version]


def _sandbox_unavailable() -> str | None:
    from . import sandbox

    return sandbox.unavailable_reason()


def check_workers(client, expected: dict[str, str], packages: list[str], check_sandbox: bool = True) -> int:
    """Raise EnvironmentMismatch unless every worker's environment equals `expected` (and, with check_sandbox, every
    worker can run the kernel sandbox); returns the worker count."""
    try:
        found = client.run(environment, packages)
    except Exception as error:  # typically: coursekit is not importable on a worker
        raise EnvironmentMismatch(f"the Dask workers could not run coursekit's environment check ({type(error).__name__}: "
                                  f"{error}); nothing was graded. Is coursekit installed on every worker?") from None
    wrong = {worker: differences(expected, env) for worker, env in found.items()}
    wrong = {worker: diff for worker, diff in wrong.items() if diff}
    if wrong:
        lines = [f"  {worker}: {'; '.join(diff)}" for worker, diff in sorted(wrong.items())]
        raise EnvironmentMismatch(
            f"{len(wrong)} of {len(found)} Dask worker(s) have another environment than this machine; nothing was "
            "graded. Install the same versions on the workers (requirements.txt, requirements-dev.txt's grading "
            "extras and this coursekit):\n" + "\n".join(lines))
    if check_sandbox:
        unsandboxed = {worker: reason for worker, reason in client.run(_sandbox_unavailable).items() if reason}
        if unsandboxed:
            raise EnvironmentMismatch(
                f"{len(unsandboxed)} of {len(found)} Dask worker(s) cannot run the students' kernels in the sandbox "
                "(coursekit.sandbox); nothing was graded:\n"
                + "\n".join(f"  {worker}: {reason}" for worker, reason in sorted(unsandboxed.items())))
    return len(found)


# ----------------------------------------------------------------------------------------------------------------
# The driver


@dataclass
class TaskStats:
    """What one submission's task cost, as measured on the worker that graded it (for the benchmark)."""

    student: str
    worker: str
    seconds: float  # wall time of grade() on the worker
    cpu_seconds: float  # CPU of the worker process and the kernels it started and stopped during the task
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

    from . import grading

    course_root = Path(course_root).resolve()
    overrides = Config(config or {})
    config = course_config(course_root, overrides)
    settings = grading.Grading(config=config)
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
        check_workers(client, expected, packages, check_sandbox=not grading.guard_settings(config).unsafe_no_sandbox)

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
                result = _result(future, course_root, assignment, student, deadline, stats)
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


def _result(future, course_root: Path, assignment: str, student: str, deadline: float, stats):
    from distributed import KilledWorker

    from . import grading

    answered = _Answered()
    try:
        outcome = future.result()
    except EnvironmentMismatch:
        raise
    except KilledWorker as error:
        answered.died = f"every Dask worker that ran it died ({str(error).splitlines()[0][:300]})"
    except Exception as error:  # a bug of ours on the worker must not lose the rest of the class, nor its traceback
        import traceback  # Dask re-raises the worker's exception with the worker's traceback

        return SubmissionResult(student, problem=Problem(ProblemKind.GRADING_FAILED, f"{type(error).__name__}: {error}"),
                                log="".join(traceback.format_exception(error)))
    else:
        answered.answer, answered.timed_out = outcome["answer"], outcome["timed_out"]
        _write_autograded(course_root, assignment, student, outcome["autograded"])
        if stats is not None:
            stats.append(TaskStats(student, outcome["worker"], outcome["answer"].seconds, outcome["cpu_seconds"]))
    result = grading._grade_with(answered, course_root, assignment, student, deadline)
    if answered.answer:
        result.seconds = answered.answer.seconds
    return result


class _Answered:
    """Stands in for grading's local worker process: hands _grade_with the answer the Dask task brought back."""

    answer = None
    died = None
    timed_out = False
    last_output = ""  # a Dask worker's output stays in its own log

    def grade(self, job, deadline):
        if self.timed_out:
            raise WorkerTimedOut()
        if self.died:
            raise WorkerDied(self.died)
        return self.answer


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
    folder = course_root / "submitted" / student / assignment
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_autograded(course_root: Path, assignment: str, student: str, files: dict[str, bytes]) -> None:
    folder = course_root / "autograded" / student / assignment
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


# ----------------------------------------------------------------------------------------------------------------
# On the worker


def _course(files: dict[str, bytes]) -> dict[str, bytes]:
    """The course task: its result is the course's files (a task rather than scattered data, so it can be rebuilt)."""
    return files


_lock = threading.Lock()  # one grading at a time per worker process (nbgrader's app and the working folder)
_apps: dict[tuple, tuple[Path, object]] = {}
_stopped_runs: set[str] = set()
_current_run: str | None = None  # the run whose submission this worker grades now
_my_environment: dict[str, str] | None = None


def grade_submission(course: dict[str, bytes], course_key: str, assignment: str, student: str,
                     files: dict[str, bytes], setup, course_id: str, deadline: float, expected: dict[str, str],
                     packages: list[str], run_id: str) -> dict:
    """The task: grade one submission on this worker with coursekit.grade_worker.grade."""
    global _my_environment, _current_run
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
        folder, app = _app_for(course, course_key, setup)
        from .grading import guard_settings

        if not guard_settings(app.config).unsafe_no_sandbox and (reason := _sandbox_unavailable()):
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

        from .grade_worker import grade
        from .worker import GradeJob

        timed_out = threading.Event()
        watchdog = threading.Timer(deadline, lambda: (timed_out.set(), _kill_kernels()))
        watchdog.daemon = True
        cpu = _cpu_seconds()
        previous = os.getcwd()
        os.chdir(folder)
        _current_run = run_id
        try:
            with _submission_lock(db_url, course_id, assignment, student):
                watchdog.start()
                answer = grade(app, GradeJob(assignment, student))
        finally:
            watchdog.cancel()
            _current_run = None
            os.chdir(previous)
        result = {
            "answer": answer, "timed_out": timed_out.is_set(), "worker": get_worker().address,
            "cpu_seconds": _cpu_seconds() - cpu,
            "autograded": {p.relative_to(autograded).as_posix(): p.read_bytes()
                           for p in sorted(autograded.rglob("*")) if p.is_file()} if autograded.is_dir() else {},
        }
        for done in (submitted.parent, autograded.parent):
            shutil.rmtree(done, ignore_errors=True)
        return result


def _app_for(course: dict[str, bytes], course_key: str, setup):
    """This worker's nbgrader Autograde app for a course and settings, loaded once (in its own folder)."""
    import pickle

    from .grade_worker import autograde_app

    key = (course_key, hashlib.sha256(pickle.dumps(setup)).hexdigest())
    if key not in _apps:
        from distributed import get_worker

        # In the worker's own scratch folder, which Dask removes when the worker stops.
        folder = Path(tempfile.mkdtemp(prefix=f"{course_key}-", dir=get_worker().local_directory))
        for name, content in course.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        _apps[key] = (folder, autograde_app(folder, setup))  # the course's configuration, as the driver's
    return _apps[key]


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


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _kill_kernels() -> int:
    """Kill the kernels this worker process started, with whatever they started (grading then fails at once for
    the notebook they ran). Returns how many processes were killed."""
    import psutil

    doomed = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            # A kernel's sandbox (everything in it dies with it, a warm kernel included), or a kernel started
            # without one. Not the warm kernels' template process (coursekit.warm): it never ran a student's code.
            if child.name() == "bwrap" or any("ipykernel_launcher" in part for part in child.cmdline()):
                doomed += [child, *child.children(recursive=True)]
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(doomed, timeout=5)
    return len(doomed)


def stop_run(run_id: str) -> int:
    """Run on every worker when the driver stops (Ctrl+C): no new task of this run starts, running ones lose their
    kernels. Returns how many processes it killed."""
    _stopped_runs.add(run_id)
    return _kill_kernels() if _current_run == run_id else 0
