"""Grading a class bigger than one machine: a real PostgreSQL gradebook and a real Dask cluster.

The module starts a throwaway PostgreSQL server (Debian's `postgresql`, run as an unprivileged user in a temporary
data folder on a free port) and a Dask cluster of local processes (`dask scheduler` and two `dask worker`s on
127.0.0.1), and stops both at the end. Section 1 with two students (one partly wrong answer, one blank
notebook) is graded once with SQLite on this machine, the reference; every other run must give exactly its grades,
cell by cell:

- the instructor's cycle with `c.CourseDirectory.db_url` set to PostgreSQL: generate_assignment, `coursekit grade`
  with two graders writing at once, generate_feedback, export;
- `coursekit grade --dask ADDRESS`: one task per submission on the workers, grades into PostgreSQL, autograded/
  and the report on this machine;
- a worker killed in the middle of a submission (the task reruns on another worker; graded once, complete);
- Ctrl+C on the driver (the workers' kernels stop; no half-graded submission), then `--dask local:1` grades again;
- a worker with another package version (refused before anything is graded).

Without PostgreSQL the module is skipped with the reason, except in CI (`CI` set), where it fails.
"""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from nbgrader.api import Gradebook
from traitlets.config import Config

from coursekit import cluster
from coursekit import testing as subs
from coursekit.cells import is_answer
from coursekit.worker import WorkerSetup
from coursekit.nbgrader_cli import ENV_WITH_VENV, nbgrader
from coursekit.testing import COURSE_ROOT, make_course_folder
from coursekit.throwaway import ServiceUnavailable, dask_cluster, postgres_server

pytestmark = pytest.mark.slow  # runs kernels, nbgrader, PostgreSQL and Dask: skipped by `-m "not slow"`

ASSIGNMENT = "01-async-database"
COURSE_ID = "fastapi-async-db"
WRONG_EXERCISE, WRONG_ANSWER = "q2_choice", "picks B"
SLEEP = 12  # seconds the "slow" student's first answer cell sleeps: time to kill a worker or press Ctrl+C


def partly_wrong() -> dict:
    wrong = subs.wrong_answers(ASSIGNMENT)[WRONG_EXERCISE][WRONG_ANSWER]
    return subs.with_answers(subs.blank_submission(ASSIGNMENT),
                             {**subs.solution_answers(ASSIGNMENT), WRONG_EXERCISE: wrong})


def slow_partly_wrong() -> dict:
    """The partly wrong notebook whose first answer cell first sleeps: the same grades, SLEEP s later."""
    notebook = partly_wrong()
    first = next(c for c in notebook["cells"] if is_answer(c) and c["cell_type"] == "code")
    first["source"] = f"import time\ntime.sleep({SLEEP})\n" + "".join(first["source"])
    return notebook


def blank() -> dict:
    return subs.blank_submission(ASSIGNMENT)


CLASS = {"grace": partly_wrong, "linus": blank}


def submit(course, students: dict):
    for student, make in students.items():
        subs.write_submission(course, student, ASSIGNMENT, make())


def cell_scores(db_url: str) -> dict[tuple[str, str], float | None]:
    with Gradebook(db_url, COURSE_ID) as gradebook:
        return {(s.student.id, g.name): g.auto_score
                for s in gradebook.assignment_submissions(ASSIGNMENT) for nb in s.notebooks for g in nb.grades}


def coursekit_grade(course, *options, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coursekit", "grade", ASSIGNMENT, f"--course={course}",
                           "--no-progress", *options], env=ENV_WITH_VENV, capture_output=True, text=True,
                          timeout=timeout)


def report_body(stdout: str, course) -> list[str]:
    """The report without its timings (the first line's duration and rate, the time per submission)."""
    return [l.replace(str(course), "COURSE") for l in stdout.splitlines()[1:] if not l.startswith("Time per submission")]


def kernels_under(process: subprocess.Popen) -> list[psutil.Process]:
    """The kernel processes a `dask worker` command's worker process started: the ipykernel processes inside a
    bubblewrap sandbox (a cold kernel runs ipykernel_launcher; a warm one is a fork of the worker's template
    process, `python -m coursekit.warm_template ... ipykernel.kernelapp ...`, which itself runs outside any sandbox
    and stays)."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for p in tree:
        try:
            in_sandbox = any(a.name() == "bwrap" for a in p.parents())
            if in_sandbox and any("ipykernel" in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


def worker_process_of(kernel: psutil.Process, dask) -> psutil.Process:
    """The Dask worker process that started a kernel (the child of a `dask worker` command's nanny)."""
    nannies = {w.pid for w in dask.workers}
    process = kernel
    while process.ppid() not in nannies:
        process = process.parent()
        assert process is not None, "the kernel is not under a Dask worker"
    return process


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------------------------------
# The services, once per module


def unavailable(reason: str):
    message = f"{reason}\n(`make test` installs Debian's postgresql when run as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg():
    try:
        with postgres_server() as server:
            yield server
    except ServiceUnavailable as error:
        unavailable(str(error))


@pytest.fixture(scope="module")
def dask(pg):
    try:
        with dask_cluster(workers=2) as running:
            yield running
    except ServiceUnavailable as error:
        unavailable(str(error))


@pytest.fixture(scope="module")
def template(pg, tmp_path_factory):
    """A course whose gradebook (database "template") knows the assignment: copied for each test."""
    course = tmp_path_factory.mktemp("pg-template")
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(COURSE_ROOT / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
    with_gradebook(course, pg.create_database("template"))
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    return course


def with_gradebook(course, db_url: str):
    """What an instructor writes into nbgrader_config.py for a PostgreSQL gradebook."""
    config = course / "nbgrader_config.py"
    text = re.sub(r"\nc\.CourseDirectory\.db_url = .*\n", "\n", config.read_text())
    config.write_text(text + f'\nc.CourseDirectory.db_url = "{db_url}"\n')


def pg_course(pg, template, tmp_path, name: str):
    """A fresh copy of the template course, with its own copy of the gradebook; returns (course, db_url)."""
    pg.query("postgres", f'CREATE DATABASE "{name}" TEMPLATE "template"')
    url = pg.url(name)
    course = tmp_path / name
    shutil.copytree(template, course)
    with_gradebook(course, url)
    return course, url


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The class graded on this machine with SQLite, as before this module existed."""
    course = make_course_folder(tmp_path_factory.mktemp("sqlite-reference"), [ASSIGNMENT])
    submit(course, CLASS)
    run = coursekit_grade(course, "--jobs=2")
    assert run.returncode == 0, run.stdout + run.stderr
    scores = cell_scores(f"sqlite:///{course / 'gradebook.db'}")
    assert {s for s, _ in scores} == set(CLASS) and None not in scores.values()
    assert 0 < sum(v for (s, _), v in scores.items() if s == "grace") < len([k for k in scores if k[0] == "grace"]) * 99
    return {"course": course, "scores": scores, "report": report_body(run.stdout, course)}


def scores_of(scores: dict, student: str, as_student: str | None = None) -> dict:
    return {(as_student or s, cell): v for (s, cell), v in scores.items() if s == student}


# ----------------------------------------------------------------------------------------------------------------
# PostgreSQL gradebook


def test_the_instructor_cycle_on_postgresql_gives_the_sqlite_grades(pg, template, reference, tmp_path):
    course, url = pg_course(pg, template, tmp_path, "cycle")
    submit(course, CLASS)
    run = coursekit_grade(course, "--jobs=2")  # two graders writing into PostgreSQL at once
    assert run.returncode == 0, run.stdout + run.stderr
    for trouble in ("locked", "LockNotAvailable", "deadlock", "could not serialize", "OperationalError",
                    "IntegrityError"):
        assert trouble not in run.stdout + run.stderr
    assert cell_scores(url) == reference["scores"], "a test cell scored differently than with SQLite"
    assert report_body(run.stdout, course) == reference["report"]

    nbgrader(course, "generate_feedback", ASSIGNMENT)
    for student in CLASS:
        assert (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").exists()
    nbgrader(course, "export", "--to=grades.csv")
    exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader((course / "grades.csv").open())}
    assert exported == {student: sum(v for (s, _), v in reference["scores"].items() if s == student)
                        for student in CLASS}
    # one submission per student, each of its graded cells once
    assert pg.query("cycle", "SELECT student_id, count(*) FROM submitted_assignment GROUP BY student_id "
                             "ORDER BY student_id") == [("grace", 1), ("linus", 1)]


# ----------------------------------------------------------------------------------------------------------------
# Dask


def test_grading_on_a_dask_cluster_equals_a_local_run_cell_by_cell(pg, dask, template, reference, tmp_path):
    course, url = pg_course(pg, template, tmp_path, "dask")
    submit(course, CLASS)
    run = coursekit_grade(course, f"--dask={dask.address}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert cell_scores(url) == reference["scores"], "a test cell scored differently than in the local run"
    assert report_body(run.stdout, course) == reference["report"], "the report differs from the local run's"
    for student in CLASS:  # the driver has the graded notebooks, as after a local run
        graded = subs.read_notebook(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        local = subs.read_notebook(reference["course"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        ran = lambda nb: [(c.get("metadata", {}).get("nbgrader", {}).get("grade_id"), c.get("execution_count") is not None,  # noqa: E731
                           [o.get("ename") for o in c.get("outputs", []) if o.get("output_type") == "error"])
                          for c in nb["cells"] if c["cell_type"] == "code"]
        assert ran(graded) == ran(local), f"{student}'s autograded notebook ran differently"


def test_a_worker_killed_mid_submission_the_task_reruns_and_grades_once(pg, dask, template, reference, tmp_path):
    course, url = pg_course(pg, template, tmp_path, "killed")
    submit(course, {"slow": slow_partly_wrong})
    stats, outcome = [], {}
    from distributed import Client
    client = Client(dask.address, timeout=30)  # the Python API, as with Dask Gateway's cluster.get_client()
    run = threading.Thread(target=lambda: outcome.update(results=cluster.grade_on_dask(
        course, ASSIGNMENT, ["slow"], client, stats=stats)))
    run.start()
    try:
        kernel = wait_for(lambda: next((k for w in dask.workers for k in kernels_under(w)), None), 300,
                          "a worker to start grading")
        time.sleep(3)  # the notebook is running: its first answer cell sleeps SLEEP s
        assert cell_scores(url) and set(cell_scores(url).values()) == {None}, "nbgrader had not started, or finished"
        killed = worker_process_of(kernel, dask)
        killed.kill()  # the worker process, not its nanny: as the OOM killer or a lost machine would
    finally:
        run.join(timeout=600)
        client.close()
    assert not run.is_alive()
    [result] = outcome["results"]
    assert result.problem is None, result.problem
    assert cell_scores(url) == scores_of(reference["scores"], "grace", "slow"), "not the grades of a local run"
    [task] = stats  # the attempt that finished ran in another, living worker process
    from distributed import Client
    with Client(dask.address, timeout=30) as client:
        pids = client.run(os.getpid)
    assert task.worker in pids and pids[task.worker] != killed.pid
    # graded once: one submission row, each graded cell once, none left without a score
    assert pg.query("killed", "SELECT count(*) FROM submitted_assignment") == [(1,)]
    assert pg.query("killed", "SELECT count(*), count(DISTINCT cell_id), count(auto_score) FROM grade") == \
        [(len(reference["scores"]) // 2,) * 3]
    # the killed worker's kernel did not outlive it
    wait_for(lambda: not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE, 30, "the orphaned kernel to exit")
    assert (course / "autograded" / "slow" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()


def like_a_terminal():
    """Ctrl+C in a terminal interrupts the foreground command. A command started in the background by a shell without
    job control (`make test &`, a script, some CI runners) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt: the driver is started here as from a terminal, whatever this test process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_the_driver_stops_the_workers_and_leaves_no_half_graded_submission(pg, dask, template, reference,
                                                                                    tmp_path):
    course, url = pg_course(pg, template, tmp_path, "interrupted")
    submit(course, {"slow": slow_partly_wrong})
    driver = subprocess.Popen([sys.executable, "-m", "coursekit", "grade", ASSIGNMENT, f"--course={course}",
                               "--no-progress", f"--dask={dask.address}"], env=ENV_WITH_VENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=like_a_terminal)
    try:
        wait_for(lambda: any(kernels_under(w) for w in dask.workers), 300, "a worker to start grading")
        time.sleep(3)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode != 0 and "KeyboardInterrupt" in err, (driver.returncode, out, err[-2000:])
    wait_for(lambda: not any(kernels_under(w) for w in dask.workers), 15, "the grading kernels to stop")
    from distributed import Client
    with Client(dask.address, timeout=30) as client:
        wait_for(lambda: not any(client.processing().values()), 30, "the workers to be idle")
    assert all(w.poll() is None for w in dask.workers), "a worker died"
    scores = cell_scores(url)
    assert set(scores.values()) <= {None}, f"half-graded: {scores}"
    assert not (course / "autograded" / "slow").exists()

    # The instructor runs it again, here on a cluster started for the run on this machine: graded, once.
    again = coursekit_grade(course, "--dask=local:1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cell_scores(url) == scores_of(reference["scores"], "grace", "slow")


def test_a_worker_with_other_package_versions_is_refused_before_anything_is_graded(pg, template, tmp_path):
    other = tmp_path / "other-pyjwt"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    f"--target={other}", "pyjwt==2.10.1"], check=True, capture_output=True)
    course, url = pg_course(pg, template, tmp_path, "mismatch")
    submit(course, {"linus": blank})
    with dask_cluster(workers=1, env={"PYTHONPATH": str(other)}) as odd:
        with pytest.raises(cluster.EnvironmentMismatch) as refused:
            cluster.grade_on_dask(course, ASSIGNMENT, ["linus"], odd.address)
        assert "pyjwt 2.10.1 (driver: 2.15.1)" in str(refused.value)
        # a worker that joins after the check refuses the task itself
        from distributed import Client
        packages = cluster.checked_packages()
        with Client(odd.address, timeout=30) as client:
            setup = WorkerSetup(Config({"CourseDirectory": {"db_url": url}}), 120)
            task = client.submit(cluster.grade_submission, {}, "course", ASSIGNMENT, "linus", {}, setup, COURSE_ID,
                                 60, cluster.environment(packages), packages, "run", pure=False)
            with pytest.raises(cluster.EnvironmentMismatch, match=r"pyjwt 2\.10\.1"):
                task.result(timeout=120)
    assert pg.query("mismatch", "SELECT count(*) FROM submitted_assignment") == [(0,)], "something was graded"


def test_a_sqlite_gradebook_is_refused_for_workers_on_other_machines(tmp_path):
    course = tmp_path / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(COURSE_ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    with pytest.raises(cluster.ClusterError, match="PostgreSQL gradebook"):
        cluster.grade_on_dask(course, ASSIGNMENT, ["linus"], "tcp://127.0.0.1:1")
