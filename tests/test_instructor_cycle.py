"""An instructor's term, both ways a class hands in, with Section 1 (the smallest notebook):

- with an nbgrader exchange (a JupyterHub): release_assignment -> fetch_assignment, answer, submit (three
  students: correct, partly wrong, blank) -> collect -> autograde -> generate_feedback -> release_feedback ->
  fetch_feedback -> export; then `coursekit grade` on the same submissions writes exactly the same grades;
- through an LMS: the LMS's zip of submissions -> zip_collect -> `coursekit grade` -> export, while another
  writer holds the gradebook locked longer than SQLite's default wait.
"""
import csv
import io
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from nbgrader.api import Gradebook
from traitlets.config.loader import PyFileConfigLoader

from coursekit.testing import COURSE_ROOT
from coursekit import testing as subs
from coursekit.testing import hidden_test_lines, html_text, make_course_folder
from coursekit.nbgrader_cli import ENV_WITH_VENV, nbgrader

pytestmark = pytest.mark.slow  # runs kernels / nbgrader: skipped by `-m "not slow"`

ASSIGNMENT = "01-async-database"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_ROOT)).load_config().CourseDirectory.course_id
WRONG_EXERCISE, WRONG_ANSWER = "q2_choice", "picks B"  # loses all of q2_choice's points, and only those


def points(exercises: list[str] | None = None) -> float:
    """Points of the assignment's test cells (of the given exercises only, when given)."""
    release = subs.blank_submission(ASSIGNMENT)
    tests = {t for e, ts in subs.autograded_exercises(release).items() if exercises is None or e in exercises for t in ts}
    return sum(float(subs.nbgrader_meta(c).get("points", 0)) for c in release["cells"]
               if subs.nbgrader_meta(c).get("grade_id") in tests)


def answered(notebook: dict, how: str) -> dict:
    if how == "correct":
        return subs.with_answers(notebook, subs.solution_answers(ASSIGNMENT))
    if how == "partly wrong":
        wrong = subs.wrong_answers(ASSIGNMENT)[WRONG_EXERCISE][WRONG_ANSWER]
        return subs.with_answers(notebook, {**subs.solution_answers(ASSIGNMENT), WRONG_EXERCISE: wrong})
    return notebook


def export_scores(course, *options) -> dict[str, tuple[float, float]]:
    """student -> (score, max score), as `nbgrader export` writes them to grades.csv."""
    nbgrader(course, "export", "--to=grades.csv", *options)
    rows = csv.DictReader(io.StringIO((course / "grades.csv").read_text()))
    return {row["student_id"]: (float(row["score"]), float(row["max_score"]))
            for row in rows if row["assignment"] == ASSIGNMENT}


def cell_scores(db_url: str) -> dict[tuple[str, str], float | None]:
    with Gradebook(db_url, COURSE_ID) as gradebook:
        return {(s.student.id, g.name): g.auto_score
                for s in gradebook.assignment_submissions(ASSIGNMENT) for nb in s.notebooks for g in nb.grades}


@pytest.fixture(scope="module")
def released_course(tmp_path_factory):
    """An instructor's course folder with the assignment generated (what every test copies)."""
    return make_course_folder(tmp_path_factory.mktemp("course-template"), [ASSIGNMENT])


def fresh_copy(released_course, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(released_course, course)
    return course


STUDENTS = {"ada": "correct", "grace": "partly wrong", "linus": "blank"}


@pytest.fixture(scope="module")
def cycle(released_course, tmp_path_factory):
    """The whole cycle through an exchange, run once; every step's result kept for the tests below."""
    tmp = tmp_path_factory.mktemp("cycle")
    course = fresh_copy(released_course, tmp)
    exchange = tmp / "exchange"
    exchange.mkdir(mode=0o777)
    on_exchange = [f"--Exchange.root={exchange}"]

    nbgrader(course, "release_assignment", ASSIGNMENT, *on_exchange)
    homes = {student: tmp / "home" / student for student in STUDENTS}

    def as_student(student):  # each student has their own home, with nbgrader's cache of their submissions
        return [f"--course={COURSE_ID}", f"--student={student}", f"--Exchange.cache={homes[student] / '.cache'}",
                *on_exchange]

    def fetch_answer_submit(student):
        homes[student].mkdir(parents=True)
        nbgrader(homes[student], "fetch_assignment", ASSIGNMENT, *as_student(student))
        fetched = homes[student] / ASSIGNMENT / NOTEBOOK
        fetched.write_text(subs.json.dumps(answered(subs.read_notebook(fetched), STUDENTS[student]), indent=1))
        nbgrader(homes[student], "submit", ASSIGNMENT, *as_student(student))

    with ThreadPoolExecutor() as students_at_once:  # students work at the same time
        list(students_at_once.map(fetch_answer_submit, STUDENTS))
    nbgrader(course, "collect", ASSIGNMENT, "--CollectApp.check_owner=False", *on_exchange)
    shutil.copy(course / "gradebook.db", tmp / "parallel.db")  # the same gradebook, before grading

    nbgrader(course, "autograde", ASSIGNMENT)  # nbgrader's own, serial
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    nbgrader(course, "release_feedback", ASSIGNMENT, *on_exchange)
    with ThreadPoolExecutor() as students_at_once:
        list(students_at_once.map(lambda s: nbgrader(homes[s], "fetch_feedback", ASSIGNMENT, *as_student(s)), STUDENTS))
    plain = export_scores(course)

    # The parallel grader on the same submissions, into the copy of the gradebook (also proves --db).
    parallel_db = f"sqlite:///{tmp / 'parallel.db'}"
    grade = subprocess.run([sys.executable, "-m", "coursekit", "grade", ASSIGNMENT, f"--course={course}",
                            "--jobs=3", f"--db={parallel_db}", "--no-progress"],
                           env=ENV_WITH_VENV, capture_output=True, text=True, timeout=900)
    return {"course": course, "homes": homes, "plain": plain, "grade": grade, "parallel_db": parallel_db,
            "parallel": export_scores(course, f"--CourseDirectory.db_url={parallel_db}")}


def test_the_exported_grades_are_exactly_those_the_answers_earn(cycle):
    full = points()
    assert full > 0
    assert cycle["plain"] == {"ada": (full, full), "grace": (full - points([WRONG_EXERCISE]), full),
                              "linus": (0.0, full)}


def test_every_student_fetches_feedback_with_their_own_score_and_no_hidden_test(cycle):
    secret = hidden_test_lines(ASSIGNMENT)
    assert secret
    for student, home in cycle["homes"].items():
        feedback = list((home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(feedback) == 1, f"{student} fetched no feedback"
        text = html_text(feedback[0].read_text())
        score, full = cycle["plain"][student]
        assert f"Score: {score:.1f} / {full:.1f}" in text, f"{student}'s feedback does not show {score} / {full}"
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{student}'s feedback shows hidden tests: {leaked[:3]}"


def test_the_parallel_grader_writes_exactly_the_grades_of_nbgrader_autograde(cycle):
    assert cycle["grade"].returncode == 0, cycle["grade"].stdout + cycle["grade"].stderr
    assert cycle["parallel"] == cycle["plain"]
    course_db = f"sqlite:///{cycle['course'] / 'gradebook.db'}"
    assert cell_scores(cycle["parallel_db"]) == cell_scores(course_db), "some test cell scored differently"


def test_the_grade_command_reports_on_the_class(cycle):
    out = cycle["grade"].stdout
    for exercise in subs.autograded_exercises(subs.blank_submission(ASSIGNMENT)):
        assert re.search(rf"^{exercise}\s+[\d.]+\s+[\d.]+\s+\d+$", out, re.M), f"no summary line for {exercise}:\n{out}"
    assert "No submission timed out, crashed or was malformed." in out
    plot = cycle["course"] / "reports" / f"{ASSIGNMENT}-scores.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def canvas_zip(path, submissions: dict[str, dict]):
    """A zip as Canvas's "Download submissions" makes it: <name>[_LATE]_<user id>_<file id>_<file name>."""
    with zipfile.ZipFile(path, "w") as archive:
        for file_id, (name, notebook) in enumerate(submissions.items(), start=5551):
            archive.writestr(f"{name}_{file_id}_{NOTEBOOK}", subs.json.dumps(notebook, indent=1))


def test_lms_path_zip_collect_then_coursekit_grade_while_the_gradebook_is_busy(released_course, tmp_path):
    course = fresh_copy(released_course, tmp_path)
    release = subs.blank_submission(ASSIGNMENT)
    archive = course / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    canvas_zip(archive / "submissions.zip", {"lovelaceada_1001": answered(release, "correct"),
                                             "hoppergrace_LATE_1002": answered(release, "partly wrong")})
    nbgrader(course, "zip_collect", ASSIGNMENT)
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["1001", "1002"]

    # Another writer (a grader in formgrader, a second grading run) holds the gradebook for 7 s: SQLite's
    # default wait is 5 s, after which `nbgrader autograde` fails with "database is locked".
    busy = sqlite3.connect(course / "gradebook.db", isolation_level=None, check_same_thread=False)
    busy.execute("BEGIN EXCLUSIVE")
    unlock = threading.Timer(7, lambda: (busy.execute("COMMIT"), busy.close()))
    unlock.start()
    started = time.monotonic()
    grade = subprocess.run([sys.executable, "-m", "coursekit", "grade", ASSIGNMENT, f"--course={course}",
                            "--jobs=2", "--no-progress"], env=ENV_WITH_VENV, capture_output=True, text=True,
                           timeout=900)
    unlock.join()
    assert time.monotonic() - started > 7
    assert grade.returncode == 0, grade.stdout + grade.stderr
    assert "locked" not in grade.stdout + grade.stderr
    full = points()
    assert export_scores(course) == {"1001": (full, full), "1002": (full - points([WRONG_EXERCISE]), full)}
