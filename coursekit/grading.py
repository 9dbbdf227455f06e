"""Autograde every submission of an assignment in parallel worker processes: the pool and its scheduling.

`grade_assignment` runs `jobs` worker processes (coursekit.worker, coursekit.grade_worker). Each loads nbgrader and
the course's nbgrader_config.py once, then autogrades one student at a time with nbgrader's own Autograde
converter: the same code and configuration as `nbgrader autograde ASSIGNMENT --student STUDENT`, writing into the
course's gradebook. A SQLite gradebook is opened with a long busy timeout, so parallel writers wait for each other
instead of failing with "database is locked"; `Grading.db_url` points the graders at another gradebook
(PostgreSQL on a JupyterHub).

Why a pool at all: `nbgrader autograde` grades students one after another (nbgrader issue 174, still so in 0.9.6);
this module is removable if nbgrader grades in parallel itself.

Nothing a student submits can stop the run: a notebook that is missing, not valid JSON, loops, hangs, prints
without end or kills its kernel is reported with the reason (a typed `Problem`), and a worker that dies or runs
past its deadline is killed (with its kernels) and replaced. submitted/ is only read.
"""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import Config, Configurable

from . import diagnosis, sandbox, warm
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import GradeJob, WorkerDied, WorkerProcess, WorkerSetup, WorkerTimedOut


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Grading(Configurable):
    """How `coursekit grade` runs: settable as traits (`Grading(jobs=2)`) or as config (`c.Grading.jobs = 2`)."""

    jobs = Integer(0, help="Students graded at once, one worker process each (0: one per available core).").tag(config=True)
    notebook_deadline = Float(
        600, help="Seconds one notebook may take to grade, whatever its cells do; a submission gets this much per "
                  "notebook plus a minute, then its worker is killed.").tag(config=True)
    sqlite_busy_timeout = Float(
        120, help="Seconds a grader waits for another writer's lock on a SQLite gradebook (pysqlite's default is 5: "
                  "parallel graders would fail with 'database is locked').").tag(config=True)
    cell_timeout = Integer(None, allow_none=True,
                           help="Seconds a cell may run (None: nbgrader_config.py's c.Execute.timeout).").tag(config=True)
    db_url = Unicode(None, allow_none=True,
                     help="The gradebook (None: nbgrader_config.py's CourseDirectory.db_url).").tag(config=True)
    unsafe_no_sandbox = Bool(
        False, help="Run the students' kernels WITHOUT the bubblewrap sandbox (coursekit.sandbox): their code then "
                    "runs with the grader's rights. Without this, grading refuses where no sandbox can run.",
    ).tag(config=True)

    warm_kernels = Bool(
        True, help="Start each kernel as a fork of a process that has already imported the course's modules "
                   "(coursekit.warm; nbgrader_config.py's GuardedExecute.warm_kernels). False: every kernel starts cold.",
    ).tag(config=True)

    def workers_for(self, students: int) -> int:
        return max(1, min(self.jobs or available_cores(), students))

    def deadline_for(self, notebooks: int) -> float:
        return self.notebook_deadline * max(1, notebooks) + 60

    def worker_setup(self) -> WorkerSetup:
        """What the workers apply on top of the course's nbgrader_config.py (as the command line would)."""
        config = Config()
        if self.cell_timeout is not None:
            config.Execute.timeout = self.cell_timeout
        if self.db_url:
            config.CourseDirectory.db_url = self.db_url
        if self.unsafe_no_sandbox:
            config.GuardedExecute.unsafe_no_sandbox = True
        if not self.warm_kernels:
            config.GuardedExecute.warm_kernels = False
        return WorkerSetup(config, self.sqlite_busy_timeout)


def submitted_students(course_root: Path, assignment: str) -> list[str]:
    """Students with a folder submitted/<student>/<assignment>/."""
    submitted = Path(course_root) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def grade_assignment(course_root: Path, assignment: str, students: list[str] | None = None,
                     settings: Grading | None = None, progress=None, dask=None) -> list[SubmissionResult]:
    """Autograde the submissions of `assignment` (all students in submitted/, or `students`).

    progress: called as progress(done, total, result) after each student.
    dask: a Dask scheduler's address, "local:N" or a distributed.Client: grade on that cluster instead of local
          worker processes (coursekit.cluster; settings.jobs unused).
    Returns one result per student, in the order of `students`; never raises because of a submission. Raises
    SandboxUnavailable, before grading anyone, where no sandbox can run (unless settings.unsafe_no_sandbox), and
    WarmKernelError when a module nbgrader_config.py preloads is not installed.
    """
    settings = settings or Grading()
    if not settings.unsafe_no_sandbox and (reason := sandbox.unavailable_reason()):
        raise sandbox.SandboxUnavailable(f"Grading refused: {reason} {sandbox.UNAVAILABLE_HELP}")
    course_root = Path(course_root).resolve()
    if settings.warm_kernels and not settings.unsafe_no_sandbox:
        warm.check_preload_modules(course_root)
    students = list(students) if students is not None else submitted_students(course_root, assignment)
    if not students:
        return []
    if dask:  # one Dask task per submission, on workers that may share no filesystem with this machine
        from .cluster import grade_on_dask
        return grade_on_dask(course_root, assignment, students, dask, settings=settings, progress=progress)
    notebooks = len(list((course_root / "source" / assignment).glob("*.ipynb")))
    deadline = settings.deadline_for(notebooks)
    setup = settings.worker_setup()
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
        except Exception as error:  # a bug of ours must not lose the rest of the class
            worker.kill()
            return SubmissionResult(student, problem=Problem(ProblemKind.GRADING_FAILED, f"{type(error).__name__}: {error}"))

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
        result.reviews = answer.reviews
        problem = problem or answer.problem
        if problem is None or problem.kind not in (ProblemKind.MISSING, ProblemKind.NOT_A_NOTEBOOK, ProblemKind.REFUSED):
            result.changes = answer.changes
    result.problem = problem
    result.seconds = time.perf_counter() - started
    return result
