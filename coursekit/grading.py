"""Autograde every submission of an assignment in parallel worker processes, and report on the class.

`grade_assignment` starts `jobs` worker processes (coursekit.grade_worker). Each loads nbgrader and the course's
nbgrader_config.py once, then autogrades one student at a time with nbgrader's own Autograde converter: the same
code and configuration as `nbgrader autograde ASSIGNMENT --student STUDENT`, writing into the course's gradebook.
A SQLite gradebook is opened with a long busy timeout, so parallel writers wait for each other instead of
failing with "database is locked"; `db_url` points the graders at another gradebook (PostgreSQL on a JupyterHub).

Nothing a student submits can stop the run: a notebook that is missing, not valid JSON, loops, hangs, prints
without end or kills its kernel is reported with the reason, and a worker that dies or runs past its deadline is
killed (with its kernels) and replaced. submitted/ is only read.
"""
import json
import math
import os
import queue
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import COURSE_ROOT
from .nbgrader_cli import ENV_WITH_VENV, nbgrader
from .preprocessors import OUTPUT_CUT_LOG, TIMING_LOG

# A whole notebook may take at most this many seconds to grade, whatever its cells do.
NOTEBOOK_DEADLINE = 600


@dataclass
class SubmissionResult:
    """What grading one student's submission gave."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> automatic score
    max_scores: dict[str, float] = field(default_factory=dict)  # grade cell id -> points
    problem: str | None = None  # why this submission could not be graded normally; None when all went well
    restored_cells: list[str] = field(default_factory=list)  # locked/test cells the student changed or deleted
    changes: list[str] = field(default_factory=list)  # what the student changed that grading put right, in words
    seconds: float = 0.0
    kernel_seconds: float = 0.0  # starting and stopping kernels (summed over the notebooks)
    cells_seconds: float = 0.0  # running the cells
    log: str = ""  # nbgrader's log for this submission

    @property
    def score(self) -> float:
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(self.max_scores.values())


def submitted_students(course_root: Path, assignment: str) -> list[str]:
    """Students with a folder submitted/<student>/<assignment>/."""
    submitted = Path(course_root) / "submitted"
    return sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir())


def grade_assignment(course_root: Path, assignment: str, students: list[str] | None = None,
                     jobs: int | None = None, cell_timeout: int | None = None, db_url: str | None = None,
                     progress=None, dask=None) -> list[SubmissionResult]:
    """Autograde the submissions of `assignment` (all students in submitted/, or `students`).

    jobs: how many students are graded at once, one worker process each (default: one per core).
    cell_timeout: seconds a cell may run before it is interrupted (default: nbgrader_config.py's).
    db_url: the gradebook (default: nbgrader_config.py's db_url, normally <course>/gradebook.db).
    progress: called as progress(done, total, result) after each student.
    dask: a Dask scheduler's address, "local:N" or a distributed.Client: grade on that cluster instead
          (coursekit.cluster; jobs unused).
    Returns one result per student, in the order of `students`; never raises because of a submission.
    """
    course_root = Path(course_root).resolve()
    students = list(students) if students is not None else submitted_students(course_root, assignment)
    if not students:
        return []
    if dask:  # one Dask task per submission, on workers that may share no filesystem with this machine
        from .cluster import grade_on_dask
        return grade_on_dask(course_root, assignment, students, dask, db_url=db_url, cell_timeout=cell_timeout,
                             progress=progress)
    jobs = max(1, min(jobs or available_cores(), len(students)))
    notebooks = sorted(p.name for p in (course_root / "source" / assignment).glob("*.ipynb"))
    deadline = NOTEBOOK_DEADLINE * max(1, len(notebooks)) + 60
    worker_args = ([f"--db={db_url}"] if db_url else []) + ([f"--timeout={cell_timeout}"] if cell_timeout else [])

    todo: queue.Queue[str] = queue.Queue()
    for student in students:
        todo.put(student)
    results: dict[str, SubmissionResult] = {}
    lock = threading.Lock()
    workers: list[_Worker] = []
    stopping = threading.Event()

    def start_worker() -> _Worker:
        worker = _Worker(course_root, worker_args)
        with lock:
            workers.append(worker)
        return worker

    def work():
        worker = start_worker()
        try:
            while not stopping.is_set():
                try:
                    student = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    result = _grade_with(worker, course_root, assignment, student, deadline)
                except Exception as error:  # a bug of ours must not lose the rest of the class
                    worker.kill()
                    result = SubmissionResult(student, problem=f"grading failed: {type(error).__name__}: {error}")
                if worker.dead and not stopping.is_set():
                    worker = start_worker()
                with lock:
                    results[student] = result
                    if progress is not None:
                        progress(len(results), len(students), result)
        finally:
            worker.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    except BaseException:  # Ctrl+C: stop the workers and their kernels, not only this process
        stopping.set()
        with lock:
            for worker in workers:
                worker.kill()
        raise
    return [results[s] for s in students]


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def grade_one(course_root: Path, assignment: str, student: str, cell_timeout: int | None = None) -> SubmissionResult:
    """Autograde one student's submission."""
    return grade_assignment(course_root, assignment, [student], jobs=1, cell_timeout=cell_timeout)[0]


def _grade_with(worker: "_Worker", course_root: Path, assignment: str, student: str,
                deadline: float) -> SubmissionResult:
    started = time.perf_counter()
    result = SubmissionResult(student)
    problem = _check_submission(course_root, assignment, student)
    try:
        answer = worker.grade(assignment, student, deadline)
    except _WorkerTimedOut:
        problem = problem or f"timed out: grading took longer than {deadline:.0f} s and was stopped"
        answer = None
    except _WorkerDied as death:
        problem = problem or f"crashed: the grading process died ({death}); nothing could be graded"
        answer = None
    if answer is not None:
        result.scores, result.max_scores, result.log = answer["scores"], answer["max_scores"], answer["log"]
        if problem is None:
            problem = (_reason_from_log(result.log) if not answer["success"]
                       else _problems_in_graded_notebooks(course_root, assignment, student, result.log))
        for kernel, cells in re.findall(rf"{TIMING_LOG}: kernel start/stop ([\d.]+) s, cells ([\d.]+) s", result.log):
            result.kernel_seconds += float(kernel)
            result.cells_seconds += float(cells)
    if problem is None or not problem.startswith(("missing", "not a valid")):
        result.restored_cells = _changed_locked_cells(course_root, assignment, student)
        result.changes = _changes_in_submission(course_root, assignment, student)
    result.problem = problem
    result.seconds = time.perf_counter() - started
    return result


class _WorkerTimedOut(Exception):
    pass


class _WorkerDied(Exception):
    pass


class _Worker:
    """One `python -m coursekit.grade_worker` process, fed one student at a time."""

    def __init__(self, course_root: Path, args: list[str]):
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.grade_worker", *args], cwd=course_root,
            # coursekit importable in the worker even when not installed; the worker gives its kernels the
            # PYTHONPATH they would have had under `nbgrader autograde` (COURSEKIT_PYTHONPATH).
            env={**ENV_WITH_VENV, "COURSEKIT_PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                 "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                             os.environ.get("PYTHONPATH")]))},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
        )
        self.buffer = b""
        self.dead = False

    def grade(self, assignment: str, student: str, deadline: float) -> dict:
        try:
            self.process.stdin.write((json.dumps({"assignment": assignment, "student": student}) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()
        ends = time.monotonic() + deadline
        while b"\n" not in self.buffer:
            remaining = ends - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise _WorkerTimedOut()
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 1 << 16)
                if not chunk:
                    self._died()
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def _died(self):
        self.kill()
        code = self.process.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, self.stderr.tell() - 2000))
        last = [l for l in self.stderr.read().decode(errors="replace").splitlines() if l.strip()]
        raise _WorkerDied(how + (f"; last words: {last[-1][:200]}" if last else ""))

    def kill(self):
        """Kill the worker and everything it started (kernels run in their own process groups)."""
        import psutil

        self.dead = True
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for process in [self.process, *children]:
            try:
                process.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        self.process.wait()
        psutil.wait_procs(children, timeout=5)

    def close(self):
        if not self.dead:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self.stderr.close()


def _check_submission(course_root: Path, assignment: str, student: str) -> str | None:
    """Say what is wrong with the submitted files before nbgrader sees them (None when they look fine)."""
    source_notebooks = sorted((course_root / "source" / assignment).glob("*.ipynb"))
    folder = course_root / "submitted" / student / assignment
    for source in source_notebooks:
        submitted = folder / source.name
        if not submitted.exists():
            return f"missing: {source.name} was not submitted"
        try:
            nbformat.validate(nbformat.reads(submitted.read_text(encoding="utf-8"), as_version=4))
        except (ValueError, UnicodeDecodeError, nbformat.ValidationError, KeyError, AttributeError) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            return f"not a valid notebook: {source.name} ({first_line[:200]})"
    return None


def _problems_in_graded_notebooks(course_root: Path, assignment: str, student: str, log: str) -> str | None:
    """Cells that printed too much, ran out of memory or that nbgrader had to interrupt (timeouts), as one message."""
    flooded = re.findall(rf"{OUTPUT_CUT_LOG}: cell (\S+) printed more than (.+?);", log)
    if flooded:
        cells = ", ".join(dict.fromkeys(cell for cell, _ in flooded))
        return (f"too much output: cell(s) {cells} printed more than {flooded[0][1]}; "
                "the output was cut and the cell stopped")
    timed_out, out_of_memory = [], []
    for notebook in sorted((course_root / "autograded" / student / assignment).glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id")
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error" and output.get("ename") in ("CellTimeoutError", "KeyboardInterrupt"):
                    timed_out.append(name)
                if output.get("output_type") == "error" and output.get("ename") == "MemoryError":
                    out_of_memory.append(name)
    if timed_out:
        return f"timed out: cell(s) {', '.join(dict.fromkeys(timed_out))} ran too long and were interrupted"
    if out_of_memory:
        return (f"out of memory: cell(s) {', '.join(dict.fromkeys(out_of_memory))} raised MemoryError (the kernel's "
                "limit is c.GuardedExecute.kernel_memory_limit); the rest was graded")
    return None


def _release_notebooks(course_root: Path, assignment: str) -> list[Path]:
    return sorted((course_root / "release" / assignment).glob("*.ipynb"))


def _submitted_cells(course_root: Path, assignment: str, student: str, name: str) -> list[dict] | None:
    try:
        return json.loads((course_root / "submitted" / student / assignment / name).read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _changed_locked_cells(course_root: Path, assignment: str, student: str) -> list[str]:
    """Locked and test cells the student edited or deleted (nbgrader put them back from the master copy)."""
    changed = []
    for release in _release_notebooks(course_root, assignment):
        cells = _submitted_cells(course_root, assignment, student, release.name)
        if cells is None:
            continue
        sources = {_grade_id(c): _source(c) for c in cells if _grade_id(c)}
        for cell in json.loads(release.read_text())["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("locked") and not meta.get("solution") and sources.get(meta["grade_id"]) != _source(cell):
                changed.append(meta["grade_id"])
    return changed


def _changes_in_submission(course_root: Path, assignment: str, student: str) -> list[str]:
    """What the student did to the notebook's structure, in words a teacher reads in the summary."""
    changes = []
    for release in _release_notebooks(course_root, assignment):
        cells = _submitted_cells(course_root, assignment, student, release.name)
        if cells is None:
            continue
        released = {_grade_id(c): c for c in json.loads(release.read_text())["cells"] if _grade_id(c)}
        counts: dict[str, int] = {}
        for cell in cells:
            if _grade_id(cell) in released:
                counts[_grade_id(cell)] = counts.get(_grade_id(cell), 0) + 1
        deleted = [g for g in released if g not in counts]
        edited = [g for g, c in released.items() if g in counts and _is_locked(c) and not _is_answer(c)
                  and _source(next(x for x in reversed(cells) if _grade_id(x) == g)) != _source(c)]
        for grade_id, count in counts.items():
            if count > 1:
                changes.append(f"cell {grade_id} appears {count} times (copied); only the last copy was graded")
        for cell in cells:
            grade_id = _grade_id(cell)
            if grade_id in released and cell.get("cell_type") != released[grade_id]["cell_type"]:
                changes.append(f"cell {grade_id} was turned from {released[grade_id]['cell_type']} into "
                               f"{cell.get('cell_type')}; it was graded as {released[grade_id]['cell_type']}")
        if edited:
            changes.append(f"locked cell(s) edited, put back before grading: {', '.join(edited)}")
        if deleted:
            changes.append(f"cell(s) deleted, put back before grading: {', '.join(deleted)}")
    return changes


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_locked(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("locked"))


def _is_answer(cell: dict) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell.get("source"), list) else cell.get("source", "")


def _reason_from_log(log: str) -> str:
    """Turn nbgrader's error log for a failed notebook into one line a teacher can act on."""
    if "DeadKernelError" in log or "Kernel died" in log:
        return ("kernel died: the notebook stopped or killed its own kernel (exit(), quit(), os._exit(), a signal "
                "or a crash); nothing after that point could be graded")
    if "CellTimeoutError" in log or "Timeout waiting for" in log or "UnresponsiveKernelError" in log:
        return "timed out: a cell hung (for example inside an awaited coroutine) and the kernel did not answer"
    if "database is locked" in log:
        return "gradebook busy: the gradebook stayed locked by another writer; grade this student again"
    errors = re.findall(r"^\s*(\w+(?:Error|Exception)): (.*)$", log, flags=re.M)
    if errors:
        name, message = errors[-1]
        return f"grading failed: {name}: {message[:200]}"
    return "grading failed: " + (log.strip().splitlines() or ["no output from nbgrader"])[-1][:200]


# ----------------------------------------------------------------------------------------------------------------
# The report at the end of a run


@dataclass
class ExerciseStats:
    exercise: str
    points: float
    mean: float  # over the submissions that have scores
    below_full_marks: int  # how many of them lost points on it


def exercises_of(course_root: Path, assignment: str) -> dict[str, list[str]]:
    """Exercise (answer cell) -> its test cells, for every notebook of the assignment, in notebook order."""
    from .submissions import autograded_exercises, read_notebook

    exercises = {}
    for release in _release_notebooks(Path(course_root), assignment):
        exercises.update(autograded_exercises(read_notebook(release)))
    return exercises


def exercise_stats(results: list[SubmissionResult], exercises: dict[str, list[str]]) -> list[ExerciseStats]:
    scored = [r for r in results if r.max_scores]
    stats = []
    grouped = {t for tests in exercises.values() for t in tests}
    leftovers = sorted({t for r in scored for t in r.max_scores} - grouped)
    for exercise, tests in [*exercises.items(), *((t, [t]) for t in leftovers)]:
        if not scored or not tests:
            continue
        points = sum(scored[0].max_scores.get(t, 0.0) for t in tests)
        marks = [sum(r.scores.get(t, 0.0) for t in tests) for r in scored]
        stats.append(ExerciseStats(exercise, points, statistics.fmean(marks),
                                   sum(1 for m in marks if m < points)))
    return stats


def format_summary(assignment: str, results: list[SubmissionResult], exercises: dict[str, list[str]],
                   seconds: float | None = None, jobs: int | None = None, plot: Path | None = None) -> str:
    """The end-of-run report: per-exercise means and failures, the score spread, the submissions to look at."""
    lines = []
    scored = [r for r in results if r.max_scores]
    head = f"{assignment}: {len(results)} submission(s)"
    if seconds:
        rate = len(results) / seconds * 60
        head += f" graded in {_duration(seconds)}" + (f" by {jobs} worker(s)" if jobs else "") + f" ({rate:.1f}/min)"
    lines += [head, ""]
    stats = exercise_stats(results, exercises)
    if stats:
        width = max(len("Exercise"), *(len(s.exercise) for s in stats))
        lines.append(f"{'Exercise':{width}}  Points   Mean  Below full marks (of {len(scored)})")
        for s in stats:
            lines.append(f"{s.exercise:{width}}  {s.points:6.1f} {s.mean:6.2f}  {s.below_full_marks}")
        totals = [r.score for r in scored]
        lines.append(f"{'Total':{width}}  {scored[0].max_score:6.1f} {statistics.fmean(totals):6.2f}  "
                     f"{sum(1 for r in scored if r.score < r.max_score)}")
        lines.append("")
        lines.append(f"Scores: lowest {min(totals):g}, median {statistics.median(totals):g}, highest {max(totals):g}"
                     + (f"; distribution plotted in {plot}" if plot else ""))
    kernel = [r.kernel_seconds for r in results if r.kernel_seconds]
    if kernel:
        cells = [r.cells_seconds for r in results if r.kernel_seconds]
        lines.append(f"Time per submission: {statistics.fmean([r.seconds for r in results]):.1f} s on average, of "
                     f"which kernel start/stop {statistics.fmean(kernel):.1f} s and running cells "
                     f"{statistics.fmean(cells):.1f} s")
    broken = [r for r in results if r.problem]
    lines.append("")
    if broken:
        lines.append(f"{len(broken)} submission(s) need attention (timed out, crashed, malformed or missing):")
        width = max(len(r.student) for r in broken)
        lines += [f"  {r.student:{width}}  {r.problem}" for r in broken]
    else:
        lines.append("No submission timed out, crashed or was malformed.")
    changed = [r for r in results if r.changes]
    if changed:
        lines.append("")
        lines.append(f"{len(changed)} submission(s) changed the notebook's structure (graded after putting it right):")
        width = max(len(r.student) for r in changed)
        for r in changed:
            lines += [f"  {r.student:{width}}  {change}" for change in r.changes]
    return "\n".join(lines)


def print_summary(results: list[SubmissionResult], assignment: str = "", exercises: dict | None = None,
                  **kwargs) -> None:
    print(format_summary(assignment, results, exercises or {}, **kwargs))


def plot_scores(results: list[SubmissionResult], path: Path, title: str) -> Path | None:
    """A histogram of total scores, saved as a PNG (None when nothing was scored)."""
    from matplotlib.figure import Figure

    scored = [r for r in results if r.max_scores]
    if not scored:
        return None
    top = max(r.max_score for r in scored)
    bins = [x - 0.5 for x in range(0, math.ceil(top) + 2)] if top <= 40 else 20
    figure = Figure(figsize=(7, 3.8), layout="constrained")
    axes = figure.subplots()
    axes.hist([r.score for r in scored], bins=bins, color="#3b75af", edgecolor="white")
    axes.set_xlabel(f"score (out of {top:g})")
    axes.set_ylabel("submissions")
    axes.set_title(f"{title}: {len(scored)} graded submission(s)")
    axes.yaxis.get_major_locator().set_params(integer=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


class ProgressBar:
    """`progress` callback for grade_assignment: a bar on a terminal, a line per tenth otherwise."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int, result: SubmissionResult) -> None:
        elapsed = time.monotonic() - self.started
        left = elapsed / done * (total - done)
        filled = round(self.width * done / total)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}  {_duration(elapsed)}"
        bar += f", about {_duration(left)} left" if done < total else " "
        flag = "  !" if result.problem else ""
        if self.tty:
            self.stream.write(f"\r{bar}  {result.student[:30]}{flag}\033[K" + ("\n" if done == total else ""))
        elif done * 10 // total != self.last_tenth:
            self.last_tenth = done * 10 // total
            self.stream.write(bar + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def make_course_folder(target: Path, assignments: list[str], course_root: Path = COURSE_ROOT) -> Path:
    """A fresh course folder in `target` (nbgrader_config.py + source/), with each assignment generated.

    This is what an instructor's course folder looks like before students submit: nbgrader's gradebook
    knows the assignments and their graded cells.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(course_root / "nbgrader_config.py", target / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(course_root / "source" / assignment, target / "source" / assignment, dirs_exist_ok=True)
        nbgrader(target, "generate_assignment", assignment, "--force")
    return target
