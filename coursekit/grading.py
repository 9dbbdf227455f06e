"""Autograde every submission of an assignment in parallel worker processes: the pool and its scheduling.

`grade_assignment` runs `jobs` worker processes (coursekit.worker, coursekit.grade_worker). Each loads nbgrader and
the course's nbgrader_config.py once, then autogrades one student at a time with nbgrader's own Autograde
converter: the same code and configuration as `nbgrader autograde ASSIGNMENT --student STUDENT`, writing into the
course's gradebook. A SQLite gradebook is opened with a long busy timeout, so parallel writers wait for each other
instead of failing with "database is locked"; `CourseDirectory.db_url` (`--db`) points the graders at another
gradebook (PostgreSQL on a JupyterHub).

Why a pool at all: `nbgrader autograde` grades students one after another (nbgrader issue 174, still so in 0.9.6);
this module is removable if nbgrader grades in parallel itself.

Nothing a student submits can stop the run: a notebook that is missing, not valid JSON, loops, hangs, prints
without end or kills its kernel is reported with the reason (a typed `Problem`), and a worker that dies or runs
past its deadline is killed (with its kernels) and replaced. submitted/ is only read.
"""
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from traitlets import Float, Integer
from traitlets.config import Config, Configurable

from . import diagnosis, sandbox, warm
from .config import course_config
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import GradeJob, WorkerDied, WorkerProcess, WorkerSetup, WorkerTimedOut


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Grading(Configurable):
    """How `coursekit grade` runs its workers: `c.Grading.jobs = 2` in nbgrader_config.py, or `--jobs 2`.

    Only what no nbgrader or coursekit class already has: a cell's timeout is `Execute.timeout`, the gradebook
    `CourseDirectory.db_url`, the sandbox and warm kernels `GuardedExecute.unsafe_no_sandbox` and `warm_kernels`."""

    jobs = Integer(0, help="Students graded at once, one worker process each (0: one per available core).").tag(config=True)
    notebook_deadline = Float(
        600, help="Seconds one notebook may take to grade, whatever its cells do; a submission gets this much per "
                  "notebook plus a minute, then its worker is killed.").tag(config=True)
    sqlite_busy_timeout = Float(
        120, help="Seconds a grader waits for another writer's lock on a SQLite gradebook (pysqlite's default is 5: "
                  "parallel graders would fail with 'database is locked').").tag(config=True)

    def workers_for(self, students: int) -> int:
        return max(1, min(self.jobs or available_cores(), students))

    def deadline_for(self, notebooks: int) -> float:
        return self.notebook_deadline * max(1, notebooks) + 60


def guard_settings(config: Config):
    """GuardedExecute as the course's configuration sets it (its sandbox and warm-kernel settings)."""
    from .preprocessors import GuardedExecute

    return GuardedExecute(config=config)


def check_can_grade(course_root: Path, config: Config) -> None:
    """SandboxUnavailable, before grading anyone, where no sandbox can run (unless GuardedExecute.unsafe_no_sandbox);
    WarmKernelError when a module the course preloads into warm kernels is not installed."""
    guard = guard_settings(config)
    if not guard.unsafe_no_sandbox and (reason := sandbox.unavailable_reason()):
        raise sandbox.SandboxUnavailable(f"Grading refused: {reason} {sandbox.UNAVAILABLE_HELP}")
    if guard.warm_kernels and not guard.unsafe_no_sandbox:
        warm.check_preload_modules(guard.preload_modules)


def submitted_students(course_root: Path, assignment: str) -> list[str]:
    """Students with a folder submitted/<student>/<assignment>/."""
    submitted = Path(course_root) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def grade_assignment(course_root: Path, assignment: str, students: list[str] | None = None,
                     config: Config | None = None, progress=None, dask=None) -> list[SubmissionResult]:
    """Autograde the submissions of `assignment` (all students in submitted/, or `students`).

    config: settings on top of the course's configuration (coursekit.config: nbgrader_config.py and the Jupyter
            config paths), as a command line gives them: `Config({"Grading": {"jobs": 2}, "Execute": {"timeout": 20}})`.
    progress: called as progress(done, total, result) after each student.
    dask: a Dask scheduler's address, "local:N" or a distributed.Client: grade on that cluster instead of local
          worker processes (coursekit.cluster; Grading.jobs unused).
    Returns one result per student, in the order of `students`; never raises because of a submission. Raises
    SandboxUnavailable, before grading anyone, where no sandbox can run (unless GuardedExecute.unsafe_no_sandbox),
    and WarmKernelError when a module nbgrader_config.py preloads is not installed.
    """
    course_root = Path(course_root).resolve()
    overrides = Config(config or {})
    config = course_config(course_root, overrides)
    check_can_grade(course_root, config)
    settings = Grading(config=config)
    students = list(students) if students is not None else submitted_students(course_root, assignment)
    if not students:
        return []
    if dask:  # one Dask task per submission, on workers that may share no filesystem with this machine
        from .cluster import grade_on_dask
        return grade_on_dask(course_root, assignment, students, dask, config=overrides, progress=progress)
    notebooks = len(list((course_root / "source" / assignment).glob("*.ipynb")))
    deadline = settings.deadline_for(notebooks)
    setup = WorkerSetup(overrides, settings.sqlite_busy_timeout)  # each worker loads the course's config itself
    workers: list[WorkerProcess] = []
    lock = threading.Lock()
    own = threading.local()  # each pool thread feeds its own worker process

    def grade(student: str) -> SubmissionResult:
        worker = getattr(own, "worker", None)
        if worker is None or worker.dead:
            worker = own.worker = WorkerProcess(course_root, setup)
            with lock:
                workers.append(worker)
        try:
            return _grade_with(worker, course_root, assignment, student, deadline)
        except Exception as error:  # a bug of ours must not lose the rest of the class, nor its traceback
            worker.kill()
            return SubmissionResult(student, problem=Problem(ProblemKind.GRADING_FAILED, f"{type(error).__name__}: {error}"),
                                    log=traceback.format_exc(), output=worker.last_output)

    results: dict[str, SubmissionResult] = {}
    executor = ThreadPoolExecutor(settings.workers_for(len(students)), thread_name_prefix="coursekit-grade")
    try:
        for future in as_completed([executor.submit(grade, student) for student in students]):
            result = future.result()
            results[result.student] = result
            if progress is not None:
                progress(len(results), len(students), result)
    except BaseException:  # Ctrl+C: stop the workers and their kernels, not only this process
        executor.shutdown(wait=False, cancel_futures=True)
        with lock:
            for worker in workers:
                worker.kill()
        raise
    executor.shutdown()
    for worker in workers:
        worker.close()
    return [results[s] for s in students]


def _grade_with(worker: WorkerProcess, course_root: Path, assignment: str, student: str,
                deadline: float) -> SubmissionResult:
    started = time.perf_counter()
    result = SubmissionResult(student)
    problem = diagnosis.check_submission(course_root, assignment, student)
    try:
        answer = worker.grade(GradeJob(assignment, student), deadline)
    except WorkerTimedOut:
        problem = problem or Problem(ProblemKind.TIMED_OUT, f"grading took longer than {deadline:.0f} s and was stopped")
    except WorkerDied as death:
        problem = problem or Problem(ProblemKind.CRASHED, f"the grading process died ({death}); nothing could be graded")
    else:
        result.scores, result.max_scores, result.log = answer.scores, answer.max_scores, answer.log
        result.timings = answer.timings
        problem = problem or answer.problem
        if problem is None or problem.kind not in (ProblemKind.MISSING, ProblemKind.NOT_A_NOTEBOOK):
            result.changes = answer.changes
    result.problem = problem
    result.output = worker.last_output
    result.seconds = time.perf_counter() - started
    return result
