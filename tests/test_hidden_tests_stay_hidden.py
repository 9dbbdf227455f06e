"""Hidden tests stay hidden inside the grading kernel (issue 19, part 2).

Each student hands in the blank Section 1 notebook with one attack in its LAST answer cell, after the test cells of
the earlier exercises ran (their hidden tests included): the cell itself reads what the interpreter kept, and its
`list_emails`, which a visible and a hidden test call, reads the interpreter while the hidden test runs. Every way a
notebook can read the interpreter is tried: input history (`In`, `_ih`, `_iN`, `Out`, IPython's history database),
`linecache`, IPython's record of the running cell, the kernel's request, frames (`sys._getframe`, `inspect.stack`, a
caught exception's `tb_frame`, an asyncio task's stack, logging's and pydantic's frame helpers), `gc`,
`/proc/self/mem`, and an audit hook that prints what IPython compiles; two more listen on ipykernel's IOPub from the
first answer cell on, for the `execute_input` message that echoes a request's code. Nothing they print holds a line
of a hidden test, in the autograded notebook or in the feedback; what the grader had to refuse is reported by name.
Honest classmates, graded in the same run, keep full marks.
"""
import base64
import json
import re
import textwrap

import pytest
from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.nbgrader_cli import nbgrader
from coursekit.outcomes import ProblemKind
from coursekit.testing import hidden_test_lines, html_text, make_course_folder

pytestmark = pytest.mark.slow  # grades a class of submissions

ASSIGNMENT = "01-async-database"
FIRST_ANSWER = "q1_nonblocking"  # runs before every test cell
LAST_ANSWER = "q3_missing_await"  # its list_emails is called by a visible test, then by a hidden one
CELL_TIMEOUT = 20

# The cell prints what it reads now; list_emails(session) prints what it reads while a test (a hidden one) runs.
READERS = {
    "print-In": ("print(In)", None),
    "ih-and-i-variables": ("print(_ih, [value for name, value in globals().items() if name.startswith('_i')])", None),
    "out-and-underscore": ("print(Out, _, __, ___)", None),
    "history-database": ("""
        hm = get_ipython().history_manager
        print(list(hm.get_range(raw=True)), list(hm.get_tail(1000, raw=True, include_latest=True)))
        print(list(hm.search("*")), hm.input_hist_raw, hm.input_hist_parsed)
    """, """
        hm = get_ipython().history_manager
        print(list(hm.get_tail(1000, raw=True, include_latest=True)), hm.input_hist_raw)
    """),
    "linecache-dump": ("""
        import linecache
        print({name: "".join(entry[2]) for name, entry in linecache.cache.items() if not name.startswith(("/usr", "/root", "/opt", "/work", "<frozen"))})
    """, """
        import linecache
        print({name: "".join(entry[2]) for name, entry in linecache.cache.items() if not name.startswith(("/usr", "/root", "/opt", "/work", "<frozen"))})
    """),
    "ipython-execution-info": ("""
        ip = get_ipython()
        print(ip.last_execution_result.info, getattr(ip.last_execution_result.info, "raw_cell", None))
    """, """
        ip = get_ipython()
        result = ip.displayhook.exec_result
        print(result.info.raw_cell, result.info.transformed_cell, ip.last_execution_result.info.raw_cell)
    """),
    "kernel-request": (None, """
        ip = get_ipython()
        print(ip.kernel.get_parent()["content"]["code"], ip.parent_header.get("content"))
    """),
    "audit-hook-prints-compiled-source": ("""
        import sys
        def spy(event, args):
            if event == "compile" and isinstance(args[0], (bytes, str)):
                print("COMPILED", args[0])
        sys.addaudithook(spy)
    """, None),
    "getframe-walk": (None, """
        import sys
        frame = sys._getframe()
        while frame is not None:
            print(frame.f_code.co_filename, {k: v for k, v in frame.f_locals.items() if isinstance(v, str)})
            frame = frame.f_back
    """),
    "inspect-stack": (None, """
        import inspect
        for info in inspect.stack():
            print(info.code_context, {k: v for k, v in info.frame.f_locals.items() if isinstance(v, str)})
    """),
    "caught-exception-frames": (None, """
        try:
            raise ValueError("look up")
        except ValueError as error:
            frame = error.__traceback__.tb_frame
        while frame is not None:
            print({k: v for k, v in frame.f_locals.items() if isinstance(v, str)})
            frame = frame.f_back
    """),
    "asyncio-task-stack": (None, """
        import asyncio
        for task in asyncio.all_tasks():
            for frame in task.get_stack():
                print({k: v for k, v in frame.f_locals.items() if isinstance(v, str)})
    """),
    "library-frame-helpers": (None, """
        import logging
        from pydantic._internal._typing_extra import parent_frame_namespace
        frame = logging.currentframe()
        while frame is not None:
            print({k: v for k, v in frame.f_locals.items() if isinstance(v, str)})
            frame = frame.f_back
        for depth in range(1, 12):
            print({k: v for k, v in (parent_frame_namespace(parent_depth=depth) or {}).items() if isinstance(v, str)})
    """),
    # every object reachable from get_ipython() (the kernel, its session, its threads, IPython's state), searched
    # for a comment of the hidden test that calls list_emails
    "kernel-object-scan": (None, """
        import time, types
        # a comment of the visible test that calls list_emails first (the control), one of the hidden test after it
        needles, seen, todo, started = ("three emails" + " ordered", "sorts" + " first"), set(), [(get_ipython(), "ip", 0)], time.monotonic()
        seen.update({id(needles), id(todo), id(seen), *map(id, needles)})
        while todo and time.monotonic() - started < 8:
            obj, path, depth = todo.pop()
            if id(obj) in seen or depth > 7:
                continue
            seen.add(id(obj))
            if isinstance(obj, (str, bytes)):
                text = obj if isinstance(obj, str) else obj.decode(errors="replace")
                for needle in needles:
                    if needle in text:
                        print("FOUND", needle, path, text[:3000])
                continue
            if isinstance(obj, (types.ModuleType, type)):
                continue
            try:
                if isinstance(obj, dict):
                    items = list(obj.items())
                elif isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
                    items = list(enumerate(obj))
                else:
                    items = list(vars(obj).items()) if hasattr(obj, "__dict__") else []
                    items += [(name, getattr(obj, name, None)) for name in getattr(type(obj), "__slots__", ())]
            except Exception:
                continue
            todo += [(value, f"{path}.{key}", depth + 1) for key, value in items[:5000]]
    """),
    "gc-objects": (None, """
        import gc
        for thing in gc.get_objects():
            if isinstance(thing, dict):
                print([v for v in thing.values() if isinstance(v, str) and "assert" in v])
    """),
    "proc-self-mem": (None, """
        import re
        with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
            for line in maps:
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                if "rw" in line.split()[1] and end - start < 64 * 2**20:
                    mem.seek(start)
                    for text in re.findall(rb"assert [ -~]{10,200}", mem.read(end - start)):
                        print(text)
    """),
    "proc-mem-through-a-link": (None, """
        import os, tempfile
        link = os.path.join(tempfile.mkdtemp(), "m")
        os.symlink("/proc/self/mem", link)
        with open(link, "rb", 0) as mem:
            print(mem.read(1))
    """),
}


def reader_submission(now: str | None, during_tests: str | None) -> dict:
    """The blank notebook whose last answer cell runs `now`, and whose list_emails runs `during_tests`."""
    source = textwrap.dedent(now or "").strip() + "\n\n"
    body = textwrap.indent(textwrap.dedent(during_tests or "pass").strip(), "    ")
    source += f"async def list_emails(session):\n{body}\n    return []\n"
    return subs.with_answers(subs.blank_submission(ASSIGNMENT), {LAST_ANSWER: source})


# What ipykernel publishes on IOPub, caught from the first answer cell on, before any test cell runs: a request's
# execute_input message carries its whole code (a test cell's hidden tests included), and ipykernel publishes it
# before the cell starts, so before the grader's hook can blank anything. `show_caught()` prints what was caught
# base64-encoded, so that no scrub of hidden-test text can recognise it; the last answer cell calls it, and so does
# its list_emails while the q3 tests (a hidden one included) run.
IOPUB_LISTENERS = {
    # wraps the IOPub thread's send_multipart (the guard puts back the session's send, not this)
    "iopub-send-wrapper": """
        import base64
        _kernel, _caught = get_ipython().kernel, []
        _send = _kernel.iopub_thread.send_multipart
        def _listen(msg, *args, **kwargs):
            frames = [bytes(frame) for frame in msg]
            if any(b"execute_input" in frame for frame in frames):
                _caught.append(b"|".join(frames))
            return _send(msg, *args, **kwargs)
        _kernel.iopub_thread.send_multipart = _listen
    """,
    # a daemon thread polling the IOPub thread's queue of sends (each a closure holding the message's frames)
    "iopub-queue-poller": """
        import base64, threading, time
        _kernel, _caught = get_ipython().kernel, []
        def _poll(queue=_kernel.iopub_thread._events, seen=set()):
            while True:
                try:
                    for send in list(queue):
                        if id(send) not in seen:
                            seen.add(id(send))
                            text = repr([cell.cell_contents for cell in send.__closure__ or ()])
                            if "execute_input" in text:
                                _caught.append(text.encode())
                except Exception:
                    pass
                time.sleep(0)
        threading.Thread(target=_poll, daemon=True).start()
    """,
}
SHOW_CAUGHT = """
    def show_caught():
        print("CAUGHT:" + base64.b64encode(b"\\n".join(_caught)).decode())
"""


def listener_submission(listener: str) -> dict:
    """The blank notebook whose first answer cell listens on IOPub, and whose last one shows what it caught."""
    last = "show_caught()\n\nasync def list_emails(session):\n    show_caught()\n    return []\n"
    return subs.with_answers(subs.blank_submission(ASSIGNMENT), {
        FIRST_ANSWER: textwrap.dedent(listener).strip() + "\n" + textwrap.dedent(SHOW_CAUGHT),
        LAST_ANSWER: last})


def decoded_catches(text: str) -> str:
    """What the listeners printed, decoded (JSON escapes of the caught messages undone as well)."""
    caught = "\n".join(base64.b64decode(blob).decode(errors="replace")
                        for blob in re.findall(r"CAUGHT:([A-Za-z0-9+/=]*)", text))
    return caught + "\n" + caught.encode().decode("unicode_escape", errors="replace")


@pytest.fixture(scope="module")
def reading_class(tmp_path_factory):
    course = make_course_folder(tmp_path_factory.mktemp("readers"), [ASSIGNMENT])
    students = {"honest-1": subs.correct_submission(ASSIGNMENT), "honest-2": subs.correct_submission(ASSIGNMENT),
                **{name: reader_submission(*reader) for name, reader in READERS.items()},
                **{name: listener_submission(listener) for name, listener in IOPUB_LISTENERS.items()}}
    for student, notebook in students.items():
        subs.write_submission(course, student, ASSIGNMENT, notebook)
    results = {r.student: r for r in grade_assignment(
        course, ASSIGNMENT, config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": CELL_TIMEOUT}}))}
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    return {"course": course, "results": results}


def graded_outputs(course, student) -> str:
    notebook = course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    return json.dumps([cell.get("outputs", []) for cell in json.loads(notebook.read_text())["cells"]])


@pytest.mark.parametrize("student", ["honest-1", "honest-2"])
def test_honest_students_keep_full_marks_next_to_readers(reading_class, student):
    result = reading_class["results"][student]
    assert result.problem is None, result.problem
    assert result.max_score > 0 and result.scores == result.max_scores


@pytest.mark.parametrize("student", READERS)
def test_no_hidden_test_line_reaches_the_graded_notebook_or_the_feedback(reading_class, student):
    course, secret = reading_class["course"], hidden_test_lines(ASSIGNMENT)
    shown = graded_outputs(course, student)
    assert not [line for line in secret if json.dumps(line)[1:-1] in shown], "hidden tests in the graded notebook"
    feedback = html_text((course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    assert not [line for line in secret if line in feedback], "hidden tests in the feedback"
    assert set(reading_class["results"][student].scores.values()) == {0.0}


def test_the_readers_really_ran_and_read(reading_class):
    """The attacks are live: each printed what it could reach (the visible tests, earlier cells)."""
    course = reading_class["course"]
    assert "print(In)" in graded_outputs(course, "print-In")
    assert "assert emails ==" in graded_outputs(course, "linecache-dump"), "the visible test's lines stay readable"
    assert "FOUND three emails ordered" in graded_outputs(course, "kernel-object-scan"), "the scan finds visible tests"


@pytest.mark.parametrize("student,refused", [
    ("audit-hook-prints-compiled-source", "sys.addaudithook"), ("getframe-walk", "sys._getframe"),
    ("inspect-stack", "sys._getframe"), ("caught-exception-frames", "reading tb_frame"),
    ("asyncio-task-stack", "reading cr_frame"), ("library-frame-helpers", "sys._getframe"),
    ("gc-objects", "gc.get_objects"), ("proc-self-mem", "open (/proc/self/mem)"),
    ("proc-mem-through-a-link", "os.symlink"),
])
def test_what_the_grader_refused_is_reported_by_name(reading_class, student, refused):
    problem = reading_class["results"][student].problem
    assert problem and problem.kind is ProblemKind.TAMPERED and refused in str(problem), problem


@pytest.mark.parametrize("student", IOPUB_LISTENERS)
def test_what_ipykernel_publishes_on_iopub_holds_no_hidden_test(reading_class, student):
    """Test cells run as silent requests: ipykernel publishes no execute_input for them, so nothing listening on
    IOPub sees their code (the listeners' catches are encoded, so only what was never sent keeps them out)."""
    course, secret = reading_class["course"], hidden_test_lines(ASSIGNMENT)
    caught = decoded_catches(graded_outputs(course, student))
    feedback = html_text((course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text())
    caught_in_feedback = decoded_catches(feedback)
    assert "CAUGHT:" in graded_outputs(course, student), "the listener showed what it caught"
    assert not [line for line in secret if line in caught], f"hidden tests in what {student} caught: {caught[:2000]}"
    assert not [line for line in secret if line in caught_in_feedback], "hidden tests in the feedback"
    assert set(reading_class["results"][student].scores.values()) == {0.0}


def test_the_iopub_listener_really_listens(reading_class):
    """The wrapper is live: it catches the execute_input of the answer cells that ran after it."""
    caught = decoded_catches(graded_outputs(reading_class["course"], "iopub-send-wrapper"))
    assert "execute_input" in caught and "show_caught()" in caught
