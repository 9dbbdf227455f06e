"""What `coursekit grade` tells the instructor at the end of a run, and while it runs (no grading needed here)."""
import io
import re

from coursekit.grade_worker import with_busy_timeout
from coursekit.outcomes import CellChange, ChangeKind, Problem, ProblemKind, SubmissionResult, Timing
from coursekit.report import Progress, exercise_stats, format_summary, plot_scores

EXERCISES = {"q1": ["test_q1_1", "test_q1_2"], "q2": ["test_q2_1"]}
MAX = {"test_q1_1": 2.0, "test_q1_2": 2.0, "test_q2_1": 3.0}


def result(student, q1_1, q1_2, q2, problem=None, changes=()):
    return SubmissionResult(student, scores={"test_q1_1": q1_1, "test_q1_2": q1_2, "test_q2_1": q2},
                            max_scores=dict(MAX), problem=problem, changes=list(changes), seconds=4.0,
                            timings=[Timing("01", kernel_seconds=1.0, cells_seconds=2.5)])


CLASS = [
    result("ada", 2, 2, 3),
    result("grace", 2, 0, 3),
    result("linus", 0, 0, 0, problem=Problem(ProblemKind.TIMED_OUT, "ran too long and were interrupted", ("q1",))),
    result("guido", 2, 2, 0, changes=[CellChange(ChangeKind.COPIED, "q2", "01")]),
    SubmissionResult("ken", problem=Problem(ProblemKind.NOT_A_NOTEBOOK, "01.ipynb (Notebook does not appear to be JSON)")),
]


def test_per_exercise_mean_and_how_many_lost_points():
    stats = {s.exercise: s for s in exercise_stats(CLASS, EXERCISES)}
    assert stats["q1"].points == 4 and stats["q1"].mean == (4 + 2 + 0 + 4) / 4 and stats["q1"].below_full_marks == 2
    assert stats["q2"].points == 3 and stats["q2"].mean == (3 + 3 + 0 + 0) / 4 and stats["q2"].below_full_marks == 2


def test_the_summary_lists_exercises_and_every_submission_needing_attention_with_its_reason():
    text = format_summary("01-async-database", CLASS, EXERCISES, seconds=60, jobs=2)
    assert "5 submission(s) graded in 1 min 00 s by 2 worker(s) (5.0/min)" in text
    assert re.search(r"^q1\s+4\.0\s+2\.50\s+2$", text, re.M) and re.search(r"^q2\s+3\.0\s+1\.50\s+2$", text, re.M)
    assert re.search(r"^Total\s+7\.0\s+4\.00\s+3$", text, re.M)
    assert "linus  timed out: cell(s) q1" in text and "ken    not a valid notebook" in text
    assert "guido  cell q2 appears 2 times" in text
    assert "kernel start/stop 1.0 s and running cells 2.5 s" in text


def test_the_score_distribution_is_saved_as_a_png(tmp_path):
    path = plot_scores(CLASS, tmp_path / "reports" / "scores.png", "01-async-database")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_scores([SubmissionResult("nobody")], tmp_path / "none.png", "x") is None


def test_the_progress_bar_counts_students_and_flags_the_ones_needing_attention():
    out = io.StringIO()
    bar = Progress(out, mininterval=0, ncols=100)
    for done, r in enumerate(CLASS, start=1):
        bar(done, len(CLASS), r)
    shown = [s for s in out.getvalue().split("\r") if s.strip()]
    assert "1/5" in shown[1] and "ada" in shown[1]
    assert any("3/5" in s and "linus  !" in s for s in shown), shown
    assert "5/5" in shown[-1]


def test_a_sqlite_gradebook_waits_for_other_writers_instead_of_failing():
    assert with_busy_timeout("sqlite:////course/gradebook.db", 120) == "sqlite:////course/gradebook.db?timeout=120"
    assert with_busy_timeout("sqlite:////g.db?timeout=5", 120) == "sqlite:////g.db?timeout=5"
    assert with_busy_timeout("postgresql://grader@db/course", 120) == "postgresql://grader@db/course"
