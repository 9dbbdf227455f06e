"""The grading job, whatever runs it: one submission, one grading process, one deadline, and the settings that say how.

coursekit grades locally (coursekit.grading: a pool of worker processes on this machine) or on Dask
(coursekit.cluster: one task per submission on a Dask worker). Both run `grade_job` with a
coursekit.worker.WorkerProcess, so a submission gets the same deadline, the same kill of the grading process and
its kernels when it runs past it, the same cleanup and the same classification of what went wrong, wherever it runs.
"""
import os
import time
from pathlib import Path

from traitlets import Float, Integer
from traitlets.config import Config, Configurable

from . import diagnosis, sandbox, warm
from .config import check_known_settings
from .outcomes import Problem, ProblemKind, SubmissionResult
from .worker import GradeJob, WorkerDied, WorkerProcess, WorkerTimedOut


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Grading(Configurable):
    """How `coursekit grade` runs its workers: `c.Grading.jobs = 2` in nbgrader_config.py, or `--jobs 2`.

    Only what no nbgrader or coursekit class already has: a cell's timeout is `Execute.timeout`, the gradebook
    `CourseDirectory.db_url`, grading without a sandbox `GuardedExecute.unsafe_no_sandbox`, the kernels' memory limit,
    warm kernels and their preload list `SandboxProvisioner.memory_limit`, `warm` and `preload_modules`."""

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
    """GuardedExecute as the course's configuration sets it (whether there is a sandbox at all)."""
    from .preprocessors import GuardedExecute

    return GuardedExecute(config=config)


def check_can_grade(course_root: Path, config: Config) -> None:
    """SandboxUnavailable, before grading anyone, where no sandbox can run (unless GuardedExecute.unsafe_no_sandbox);
    WarmKernelError when a module the course preloads into warm kernels is not installed; config.UnknownSetting for a
    setting of a coursekit class that the class does not have (misspelt, or moved)."""
    check_known_settings(config)
    guard = guard_settings(config)
    if guard.unsafe_no_sandbox:
        return
    if reason := sandbox.unavailable_reason():
        raise sandbox.SandboxUnavailable(f"Grading refused: {reason} {sandbox.UNAVAILABLE_HELP}")
    kernels = guard.sandbox_settings()
    if kernels.warm:
        warm.check_preload_modules(kernels.preload_modules)


def grade_job(worker: WorkerProcess, course_root: Path, assignment: str, student: str,
              deadline: float) -> SubmissionResult:
    """One submission, graded by `worker` (a coursekit.worker.WorkerProcess) within `deadline` seconds: the one
    job both executors run, the local pool on this machine and the Dask task on a worker (coursekit.cluster_task).
    Never raises because of the submission: what went wrong is the result's `problem`."""
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
    result.output = worker.last_output
    result.seconds = time.perf_counter() - started
    return result
