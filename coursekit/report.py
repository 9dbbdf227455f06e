"""What `coursekit grade` tells the instructor: a progress bar while it runs, then per-exercise means and failures,
the score spread, the submissions to look at (their typed problems, in words) and a plot of the scores."""
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from .diagnosis import describe_changes
from .outcomes import SubmissionResult


@dataclass
class ExerciseStats:
    exercise: str
    points: float
    mean: float  # over the submissions that have scores
    below_full_marks: int  # how many of them lost points on it


def exercises_of(course_root: Path, assignment: str) -> dict[str, list[str]]:
    """Exercise (answer cell) -> its test cells, for every notebook of the assignment, in notebook order."""
    from .cells import autograded_exercises, read

    exercises = {}
    for release in sorted((Path(course_root) / "release" / assignment).glob("*.ipynb")):
        exercises.update(autograded_exercises(read(release)))
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
    timed = [r for r in results if r.kernel_seconds]
    if timed:
        lines.append(f"Time per submission: {statistics.fmean([r.seconds for r in results]):.1f} s on average, of "
                     f"which kernel start/stop {statistics.fmean(r.kernel_seconds for r in timed):.1f} s and running "
                     f"cells {statistics.fmean(r.cells_seconds for r in timed):.1f} s")
    broken = [r for r in results if r.problem]
    lines.append("")
    if broken:
        lines.append(f"{len(broken)} submission(s) need attention (timed out, crashed, malformed or missing):")
        width = max(len(r.student) for r in broken)
        lines += [f"  {r.student:{width}}  {r.problem}" for r in broken]
    else:
        lines.append("No submission timed out, crashed or was malformed.")
    flagged = [r for r in results if r.reviews]
    if flagged:
        lines.append("")
        lines.append(f"{len(flagged)} submission(s) need review (graded as usual; read the lines named):")
        width = max(len(r.student) for r in flagged)
        lines += [f"  {r.student:{width}}  {review}" for r in flagged for review in r.reviews]
    changed = [r for r in results if r.changes]
    if changed:
        lines.append("")
        lines.append(f"{len(changed)} submission(s) changed the notebook's structure (graded after putting it right):")
        width = max(len(r.student) for r in changed)
        for r in changed:
            lines += [f"  {r.student:{width}}  {change}" for change in describe_changes(r.changes)]
    return "\n".join(lines)


def format_details(results: list[SubmissionResult]) -> str:
    """Each submission's problem, nbgrader's log (tracebacks included) and what the grading process and its kernels
    printed: for `--verbose` (the submissions that need attention) and `--log-file` (all of them)."""
    blocks = []
    for r in results:
        lines = [f"===== {r.student}: {r.problem or 'graded'}"]
        if r.log.strip():
            lines += ["----- nbgrader's log", r.log.rstrip()]
        if r.output.strip():
            lines += ["----- printed by the grading process and its kernels", r.output.rstrip()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


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


class Progress:
    """`progress` callback for grade_assignment: tqdm's bar (count, rate, time left), the student just graded and
    a '!' when that submission needs attention."""

    def __init__(self, file=None, **tqdm_options):
        self.file = file or sys.stderr
        self.options = tqdm_options
        self.bar = None

    def __call__(self, done: int, total: int, result: SubmissionResult) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, file=self.file, unit="submission", dynamic_ncols=True, **self.options)
        self.bar.set_postfix_str(result.student[:30] + ("  !" if result.problem else ""), refresh=False)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
