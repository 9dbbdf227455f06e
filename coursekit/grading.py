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
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from traitlets.config import Config

from .config import course_config
from .jobs import Grading, check_can_grade, grade_job  # Grading: also the API of grading
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import WorkerProcess, WorkerSetup


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
            return grade_job(worker, course_root, assignment, student, deadline)
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
