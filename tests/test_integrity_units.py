"""The grader's guard and sandbox settings, in milliseconds, without a kernel: the guard runs in an in-process IPython
shell, exactly the code the grader sends to each grading kernel."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbformat.v4 import new_code_cell
from nbgrader import utils

from coursekit import bubblewrap, guard_state, sandbox
from coursekit.grading import grade_assignment
from coursekit.preprocessors import GuardedExecute
from coursekit.integrity import GraderClient, builtin_names, integrity_error

SWALLOW = "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)"


@pytest.fixture
def shell():
    shell = InteractiveShell.instance()
    yield shell
    InteractiveShell.clear_instance()


@pytest.fixture
def guard(shell):
    return guard_state.Guard(shell)


def error_of(shell, code: str):
    return shell.run_cell(code, silent=True).error_in_exec


def test_a_clean_interpreter_has_nothing_to_put_back(shell, guard):
    shell.run_cell("x = [len('abc'), sorted([2, 1])]")
    assert guard.restore() == []


@pytest.mark.parametrize("hook,found", [
    (SWALLOW, "a custom exception handler (set_custom_exc)"),
    ("get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])", "input transformers"),
    ("import ast\nget_ipython().ast_transformers.append(ast.NodeTransformer())", "AST transformers"),
    ("get_ipython().events.register('pre_run_cell', lambda *a: None)", "an event callback (pre_run_cell)"),
    ("import builtins\nbuiltins.sorted = lambda *a, **k: []", "the built-in sorted"),
    ("type(get_ipython()).showtraceback = lambda *a, **k: None", "IPython's showtraceback()"),
    ("get_ipython().run_cell = lambda *a, **k: None", "IPython's run_cell()"),
    ("get_ipython().user_ns['__builtins__'] = {}", "the notebook's __builtins__"),
], ids=["exception-handler", "input-transformer", "ast-transformer", "event", "builtin", "class-method",
        "instance-method", "notebook-builtins"])
def test_every_hook_a_student_installs_is_found_and_put_back(shell, guard, hook, found):
    original_showtraceback = type(shell).showtraceback
    try:
        shell.run_cell(hook)
        assert found in guard.restore()
        assert guard.restore() == [], "everything was put back the first time"
        assert isinstance(error_of(shell, "assert 1 == 2"), AssertionError), "errors are reported again"
    finally:
        type(shell).showtraceback = original_showtraceback


def test_a_swallowed_error_shows_again_once_the_handler_is_put_back(shell, guard):
    def shown(code: str) -> tuple[BaseException | None, str]:
        with contextlib.redirect_stdout(io.StringIO()) as out:  # where IPython shows a traceback
            result = shell.run_cell(code)
        return result.error_in_exec, out.getvalue()

    shell.run_cell("%colors nocolor")
    shell.run_cell(SWALLOW)
    assert "hidden" not in shown("assert False, 'hidden'")[1], "the handler really hides the error"
    assert guard.restore() == ["a custom exception handler (set_custom_exc)"]
    error, text = shown("assert False, 'hidden'")
    assert isinstance(error, AssertionError) and "AssertionError: hidden" in text, "shown again, as nbgrader needs it"


def test_a_notebook_variable_hiding_a_builtin_the_tests_use_is_removed(shell, guard):
    shell.run_cell("def isinstance(*args):\n    return True\nmax = 3")
    report = guard.check("n0nce", names=("isinstance", "max"))
    assert report["guard"] == "n0nce" and report["found"] == ["the built-in isinstance() the tests use, redefined"]
    assert "isinstance" not in shell.user_ns
    assert shell.user_ns["max"] == 3, "a plain value named like a built-in stays: it fools no test"


def test_the_marker_of_a_test_cell_is_reported_once_reached(shell, guard):
    guard.reach("m1")
    assert guard.check("n", marker="m1")["reached"] is True
    assert guard.check("n", marker="m2")["reached"] is False


def test_builtin_names_are_read_from_a_test_cell_with_top_level_await():
    source = "response = await client.get('/x')\nassert isinstance(response.json(), list)\nassert len(x) == 2"
    assert builtin_names(source) == ("isinstance", "len", "list")
    assert builtin_names("%timeit len([])") == ()


def test_an_untrusted_cell_scores_zero_and_says_why():
    cell = new_code_cell("assert True", metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 2,
                                                                "solution": False, "locked": True}})
    cell.outputs = [integrity_error("it stopped before its last line")]
    assert utils.determine_grade(cell)[0] == 0
    assert "stopped before its last line" in cell.outputs[0].evalue


def test_the_sandbox_makes_the_folders_above_its_mount_points_reachable():
    parents = bubblewrap.missing_parents(["/opt/python/3.11", "/home/grader/course/.venv", "/tmp/k/connection",
                                       "/home/grader/course/.venv/lib"])
    assert parents == ["/home", "/opt", "/home/grader", "/opt/python", "/tmp/k", "/home/grader/course"]


@pytest.mark.skipif(sandbox.unavailable_reason() is not None, reason="needs a working bubblewrap sandbox")
def test_the_kernel_can_read_what_the_sandbox_shows_of_etc(tmp_path):
    """As root bubblewrap made /etc 0700, so the kernel's user could read none of ETC_FILES (certificates, time zone,
    fonts: a plot printed "Fontconfig error: Cannot load default config file" on stderr)."""
    shown = [f"/etc/{name}" for name in bubblewrap.ETC_FILES if os.access(f"/etc/{name}", os.R_OK)]
    script = "import json, os; print(json.dumps([p for p in %r if not os.access(p, os.R_OK)]))" % shown
    env = {"HOME": "/tmp", "PATH": bubblewrap.kernel_path()}
    command = bubblewrap.sandbox_command([sys.executable, "-c", script], [], str(tmp_path), env=env, work_size=2**20)
    unreadable = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    assert "/etc/fonts" in shown and json.loads(unreadable) == []
    if shutil.which("fc-list"):  # what matplotlib runs at its first import in a fresh sandbox
        fonts = subprocess.run(bubblewrap.sandbox_command(["fc-list"], [], str(tmp_path), env=env, work_size=2**20),
                               capture_output=True, text=True, timeout=60)
        assert fonts.returncode == 0 and "Fontconfig error" not in fonts.stderr, fonts.stderr


def test_without_bubblewrap_grading_is_refused_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "bwrap", lambda: None)
    monkeypatch.setattr(sandbox, "_checked", {})  # tried again, without bubblewrap
    (tmp_path / "source" / "a").mkdir(parents=True)
    (tmp_path / "submitted" / "ada" / "a").mkdir(parents=True)
    # coursekit grade: refused before any student is graded
    with pytest.raises(sandbox.SandboxUnavailable, match=r"not installed.*--unsafe-no-sandbox"):
        grade_assignment(tmp_path, "a")
    # plain nbgrader autograde with the course's preprocessors: no kernel starts unsandboxed
    with pytest.raises(sandbox.SandboxUnavailable, match=r"GuardedExecute.unsafe_no_sandbox=True"):
        GuardedExecute(kernel_name="python3").create_kernel_manager()
    # the way out, taken on purpose: the kernel manager is the plain one
    unsafe = GuardedExecute(kernel_name="python3", unsafe_no_sandbox=True).create_kernel_manager()
    assert "kernel_provisioner" not in unsafe.kernel_spec.metadata


def test_test_cells_go_as_silent_requests_which_ipykernel_does_not_echo_on_iopub(monkeypatch):
    """The grader's kernel client sends what runs inside silent_requests() (test cells, probes) with silent=True,
    and the notebook's other cells as nbclient asks."""
    kc = GuardedExecute(kernel_name="python3", unsafe_no_sandbox=True).create_kernel_manager().client()
    assert isinstance(kc, GraderClient)
    sent = []
    monkeypatch.setattr(GraderClient, "shell_channel", type("Channel", (), {"send": staticmethod(sent.append)})())
    kc.execute("answer = 42", store_history=True)
    with kc.silent_requests():
        kc.execute("assert answer == 42", store_history=False, stop_on_error=False)
    kc.execute("answer += 1")
    assert [(m["content"]["code"], m["content"]["silent"]) for m in sent] == [
        ("answer = 42", False), ("assert answer == 42", True), ("answer += 1", False)]


def test_the_private_folder_of_a_killed_grader_is_removed_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned, running = tmp_path / f"{sandbox.FOLDER_PREFIX}dead", tmp_path / f"{sandbox.FOLDER_PREFIX}alive"
    for folder, pid in [(abandoned, dead.pid), (running, os.getpid())]:
        (folder / "work").mkdir(parents=True)
        started = psutil.Process(os.getpid()).create_time() if pid == os.getpid() else 0.0
        (folder / "grader.pid").write_text(f"{pid} {started}")
    sandbox.remove_abandoned_folders()
    assert not abandoned.exists() and running.exists()


# A wrong answer's coroutine, never awaited, held by the failing cell's traceback in a reference cycle.
UNAWAITED = """
async def execute():
    return 1

def report():
    row = execute()  # forgets await
    holder = {"row": row}
    holder["self"] = holder  # a reference cycle: freed by the garbage collector, whenever it runs
    return row.one()

report()
"""


@pytest.mark.parametrize("collect", [True, False], ids=["collected-by-the-check", "not-collected"])
def test_what_a_failed_cell_left_is_freed_by_the_check_not_in_a_later_test_cell(shell, guard, collect):
    """Otherwise its "coroutine was never awaited" warning lands in whatever cell runs when the collector does."""
    import gc
    import warnings

    def warned(action) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action()
        return any("was never awaited" in str(w.message) for w in caught)

    gc.collect()
    shell.run_cell(UNAWAITED, silent=True)
    during_check = warned(lambda: guard.check("nonce", collect=collect))
    shell.run_cell("raise AssertionError('canary')", silent=True)  # as the probe does: the failed cell's error is let go
    later = warned(lambda: shell.run_cell("import gc; gc.collect()", silent=True))  # the collector, in a later cell
    if collect:
        assert during_check and not later
    else:  # the control: without the collection, the warning reaches the later cell
        assert not during_check and later


def test_a_warm_kernel_with_a_capability_left_in_its_bounding_set_is_refused():
    """warm_entry.py's last check before a student's code runs: this test process keeps its full bounding set (a kernel
    drops it; tests/test_warm_kernels.py shows a warm kernel's is empty), so the check refuses it."""
    from coursekit import warm_entry

    with pytest.raises(PermissionError, match="CapBnd"):
        warm_entry.check_no_capabilities()


class _FailingPrctl:
    """Stands in for libc in warm_entry: every prctl fails with `error`."""

    def __init__(self, error: int):
        self.error = error

    def prctl(self, *args):
        import ctypes
        ctypes.set_errno(self.error)
        return -1


def _become_kernel_in_a_fork(monkeypatch, error: int) -> str:
    """What warm_entry.become_kernel reports (through its `ready` pipe) when every prctl fails with `error`: it runs
    in a fork, since on failure it ends the process, and on success it would run a kernel."""
    from coursekit import warm_entry

    monkeypatch.setattr(warm_entry, "_libc", _FailingPrctl(error))
    request = {"limits": {}, "uid": 65534, "gid": 65534, "env": {}, "cwd": "/", "argv": []}
    fifo_read, fifo_write = os.pipe()
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_read)
            warm_entry.become_kernel(request, fifo_write, ready_write, {})
        finally:
            os._exit(99)  # never back into pytest
    os.close(ready_write)
    os.close(fifo_write)
    answer = os.read(ready_read, 4096).decode()
    os.close(ready_read)
    os.close(fifo_read)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 1, answer
    return answer


def test_a_warm_kernel_whose_bounding_set_cannot_be_dropped_is_refused(monkeypatch):
    """prctl(PR_CAPBSET_DROP) failing (other than EINVAL, a capability this kernel lacks) stops the kernel's start."""
    import errno

    answer = _become_kernel_in_a_fork(monkeypatch, errno.EPERM)
    assert answer == "PermissionError: [Errno 1] prctl(PR_CAPBSET_DROP, 0)"  # OSError(EPERM) is a PermissionError


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel's start drops root before no_new_privs: needs root")
def test_a_warm_kernel_without_no_new_privs_is_refused(monkeypatch):
    """EINVAL from PR_CAPBSET_DROP is let pass (a capability this kernel lacks); a failing PR_SET_NO_NEW_PRIVS is
    not."""
    import errno

    answer = _become_kernel_in_a_fork(monkeypatch, errno.EINVAL)
    assert answer == "OSError: [Errno 22] prctl(PR_SET_NO_NEW_PRIVS)"
