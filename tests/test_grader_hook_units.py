"""The grader's audit hook (guard_hook.install, sent as kernel_guard.install_request), in a fresh Python with an
IPython shell, without a kernel: what it refuses to a notebook's code, what it lets libraries do, and the signed
report a fake cannot produce.

An audit hook cannot be removed, so each test runs its cells in a new interpreter (about a second each)."""
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import textwrap

import pytest

from coursekit import guard_state, kernel_guard

DRIVER = r"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
installed = shell.run_cell(sys.argv[1], silent=True, store_history=False)  # the grader's request, as a kernel runs it
assert installed.success, installed.error_in_exec or installed.error_before_exec
results = []
for cell in json.load(sys.stdin):
    result = shell.run_cell(cell, silent=True)
    error = result.error_in_exec or result.error_before_exec
    results.append(f"{type(error).__name__}: {error}" if error else "ok")
print("RESULTS " + json.dumps(results))
"""


def mac(key: str, text: str) -> str:
    return hmac.new(bytes.fromhex(key), text.strip().encode(), hashlib.sha256).hexdigest()


def run_cells(cells: list[str], key: str | None = None, trusted: tuple[str, ...] = (),
              max_output: int = -1) -> list[str]:
    """Run each cell as a notebook cell after the hook is installed: "ok" or "<error type>: <message>"."""
    key = key or secrets.token_hex(32)
    settings = {"begin": "### BEGIN HIDDEN TESTS", "end": "### END HIDDEN TESTS", "roots": [],
                "trusted": [mac(key, cell) for cell in trusted], "max_output": max_output}
    run = subprocess.run([sys.executable, "-c", DRIVER, kernel_guard.install_request(key, settings)],
                         input=json.dumps([textwrap.dedent(c) for c in cells]), capture_output=True, text=True,
                         timeout=120)
    line = next((l for l in run.stdout.splitlines() if l.startswith("RESULTS ")), None)
    assert line, run.stdout + run.stderr
    return json.loads(line[len("RESULTS "):])


LIBRARIES_AT_WORK = {
    "typing.NamedTuple": "import typing\nclass P(typing.NamedTuple):\n    x: int\nassert P(1).x == 1",
    "enum": "import enum\nclass Color(enum.Enum):\n    RED = 1\nassert Color.RED.value == 1",
    "namedtuple": "import collections\nassert collections.namedtuple('P', 'x y')(1, 2).y == 2",
    "dataclasses": "import dataclasses\n@dataclasses.dataclass\nclass D:\n    x: int = 0\nassert D(3).x == 3",
    "pydantic forward ref": ("import pydantic\nclass Node(pydantic.BaseModel):\n    children: list['Node'] = []\n"
                             "assert Node(children=[{}]).children[0].children == []"),
    "logging": ("import io, logging\nstream = io.StringIO()\nlog = logging.getLogger('x')\n"
                "log.addHandler(logging.StreamHandler(stream))\nlog.warning('hello')\n"
                "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('boom')\nassert 'hello' in stream.getvalue()"),
    "warnings": "import warnings\nwith warnings.catch_warnings(record=True) as w:\n    warnings.simplefilter('always')\n    warnings.warn('x')\nassert w",
    "SQLAlchemy warning": ("import warnings\nfrom sqlalchemy import util\nwith warnings.catch_warnings(record=True) as w:\n"
                           "    warnings.simplefilter('always')\n    util.warn('careful')\nassert w"),
    "files through pathlib": ("import pathlib, tempfile\npath = pathlib.Path(tempfile.mkdtemp()) / 'x.txt'\n"
                              "path.write_text('hi')\nassert path.read_text() == 'hi' and open(path).read() == 'hi'"),
    "inspect.signature": "import inspect\ndef f(a, b=2): pass\nassert list(inspect.signature(f).parameters) == ['a', 'b']",
    "FastAPI app": ("from fastapi import FastAPI\napp = FastAPI()\n@app.get('/x')\nasync def x(q: int = 0):\n    return q\n"
                    "assert app.routes"),
    "an error shown by IPython": "def broken():\n    raise ValueError('expected')\nbroken()",
}


def test_libraries_that_read_frames_themselves_keep_working():
    results = run_cells(list(LIBRARIES_AT_WORK.values()))
    expected = ["ok"] * (len(LIBRARIES_AT_WORK) - 1) + ["ValueError: expected"]
    assert dict(zip(LIBRARIES_AT_WORK, results)) == dict(zip(LIBRARIES_AT_WORK, expected))


REFUSED = {
    "sys._getframe": "import sys\nsys._getframe()",
    "inspect.currentframe": "import inspect\ninspect.currentframe()",
    "inspect.stack": "import inspect\ninspect.stack()",
    "traceback frames": "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame",
    "a generator's frame": "def g():\n    yield 1\ng().gi_frame",
    "a coroutine's frame": "async def c():\n    pass\ncoro = c()\ntry:\n    coro.cr_frame\nfinally:\n    coro.close()",
    "logging.currentframe": "import logging\nlogging.currentframe()",
    "other threads' frames": "import sys\nsys._current_frames()",
    "gc.get_objects": "import gc\ngc.get_objects()",
    "gc.get_referrers": "import gc\ngc.get_referrers(gc)",
    "a trace function": "import sys\nsys.settrace(lambda *a: None)",
    "a profile function": "import sys\nsys.setprofile(lambda *a: None)",
    "ctypes": "import ctypes\nctypes.string_at(id(1), 8)",
    "a process": "import subprocess\nsubprocess.run(['true'])",
    "os.system": "import os\nos.system('true')",
    "/proc/self/mem": "open('/proc/self/mem', 'rb')",
    "/proc/self/mem, relative": "import os\nos.chdir('/proc/self')\ntry:\n    open('mem', 'rb')\nfinally:\n    os.chdir('/')",
    "/proc/self/mem, as a Path": "import pathlib\nopen(pathlib.Path('/proc/self/mem'), 'rb')",
    "a link into /proc, from a Path": "import os, pathlib, tempfile\nos.symlink(pathlib.Path('/proc/self'), tempfile.mktemp())",
    "code under a library's name": "import json\ncompile('x = 1', json.__file__, 'exec')",
    "code objects under a library's name": "import json\n(lambda: 0).__code__.replace(co_filename=json.__file__)",
    "code under the guard's own name": f"compile('x = 1', {kernel_guard.GUARD_FILE!r}, 'exec')",
    "code objects under the guard's own name": f"(lambda: 0).__code__.replace(co_filename={kernel_guard.GUARD_FILE!r})",
    "an AST compiled by hand": "import ast\ncompile(ast.parse('x = 1'), 'mine.py', 'exec')",
    "swapping a function's code": "def f(): pass\ndef g(): pass\nf.__code__ = g.__code__",
    "marshal.loads": "import marshal\nmarshal.loads(marshal.dumps(1))",
}


def test_what_tampering_and_reading_need_is_refused_to_a_notebook():
    results = run_cells(list(REFUSED.values()))
    refused = {name: result for name, result in zip(REFUSED, results) if "The grader forbids" not in result}
    assert not refused, refused


IMPORTS = r"""
import sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_cell("pass", silent=True, store_history=False)  # what IPython imports for its first cell
sys.path.insert(0, sys.argv[2])  # the notebook's folder, first (a kernel has it later, after the standard library)
before = set(sys.modules)
installed = shell.run_cell(sys.argv[1], silent=True, store_history=False)
assert installed.success, installed.error_in_exec or installed.error_before_exec
print("IMPORTED " + " ".join(sorted(set(sys.modules) - before - set(sys.builtin_module_names))))
"""


def test_the_guard_s_request_imports_no_module_a_notebook_s_folder_could_provide(tmp_path):
    """The guard's modules reach the kernel as source, not through an import: the notebook's folder is on a kernel's
    import path, and a `coursekit` or `linecache.py` there must not answer. A planted one would say so."""
    for name in ("coursekit/__init__.py", "guard_state.py", "guard_hook.py", "linecache.py", "_hashlib.py", "gc.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("raise SystemExit('planted module imported')\n")
    request = kernel_guard.install_request(secrets.token_hex(32), {"begin": "### BEGIN", "end": "### END"})
    run = subprocess.run([sys.executable, "-c", IMPORTS, request, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "IMPORTED \n" in run.stdout, run.stdout + run.stderr


def test_a_new_audit_hook_is_not_added():
    """CPython cancels sys.addaudithook quietly when a hook refuses it with a RuntimeError (the grader records it)."""
    cell = "import sys\ncalls = []\nsys.addaudithook(lambda *a: calls.append(a))\nopen('/dev/null').close()\nassert not calls"
    assert run_cells([cell]) == ["ok"]


def test_rebinding_builtins_or_the_guard_s_globals_does_not_switch_the_hook_off():
    disarm = """
        import builtins
        builtins.any = builtins.all = lambda *args: True
        for cls in object.__subclasses__():
            if cls.__name__ == "Guard":
                g = cls.__init__.__globals__
                g.update(EVENTS=frozenset(), ALWAYS_VETOED=frozenset(), FRAME_ATTRIBUTES=frozenset(),
                         HELPER_FILES=("",), GUARD_FILE="<ipython-input")
    """
    results = run_cells([disarm, "import sys\nsys._getframe()", "import gc\ngc.get_objects()"])
    assert results[0] == "ok"
    assert all("The grader forbids" in r for r in results[1:]), results


def test_the_check_s_report_is_signed_and_a_fake_one_does_not_verify():
    key = secrets.token_hex(32)
    ask = ("import sys\nbox = []\nsys.audit('coursekit.check', 'n0nce', (), None, False, None, box)\n"
           "assert box, 'no report'\nraise AssertionError(box[0])")
    fake = "raise AssertionError(repr(('n0nce', [], None, None, [], [])) + '|' + '0' * 64)"
    real, forged = run_cells([ask, fake], key=key)
    for result, genuine in ((real, True), (forged, False)):
        report, _, signature = result.removeprefix("AssertionError: ").rpartition("|")
        assert hmac.compare_digest(signature, hmac.new(bytes.fromhex(key), report.encode(), hashlib.sha256)
                                   .hexdigest()) is genuine, result
    assert real.startswith("AssertionError: ('n0nce', [")


def test_the_course_s_own_cells_may_walk_gc_and_a_changed_copy_may_not():
    setup = "import gc\nsessions = [o for o in gc.get_objects() if type(o) is dict and 'zzz' in o]"
    assert run_cells([setup, setup + "\n"], trusted=(setup,)) == ["ok", "ok"]
    changed = run_cells([setup + "\nx = 1"], trusted=(setup,))
    assert "The grader forbids gc.get_objects" in changed[0], changed


def check(nonce: str, marker: str | None = None, arm: tuple[str, str] | None = None) -> str:
    """A probe as the grader sends it: the hook's signed report, raised as the cell's error."""
    return (f"import sys as _s\n_box = []\n_s.audit('coursekit.check', {nonce!r}, (), {marker!r}, False, {arm!r}, _box)\n"
            "raise AssertionError(_box[0])")


def report_of(result: str) -> tuple:
    import ast
    return ast.literal_eval(result.removeprefix("AssertionError: ").rpartition("|")[0])


TEST_CELL = """leak = [line for entry in __import__('linecache').cache.values() if len(entry) > 2 and entry[2]
        for line in entry[2] if 'HIDDEN' + '_VALUE' in line]
### BEGIN HIDDEN TESTS
assert 'HIDDEN_VALUE_42'.endswith('42')
### END HIDDEN TESTS
__import__('sys').audit('coursekit.reach', 'm1')"""


def test_a_test_cell_runs_with_its_hidden_lines_blanked_and_its_marker_counted():
    key = secrets.token_hex(32)
    results = run_cells([check("n1", arm=(mac(key, TEST_CELL), "m1")), TEST_CELL, check("n2", marker="m1"),
                         "assert leak == [], leak"], key=key)
    assert report_of(results[0])[0] == "n1"
    assert results[1] == "ok"
    nonce, found, reached, forged, during, vetoed = report_of(results[2])
    assert (nonce, reached, forged, during) == ("n2", True, None, [])
    assert results[3] == "ok", "the hidden line was readable in linecache while the test ran"
    # the control: the same cell, not announced by a probe, keeps its hidden line in linecache
    unannounced = run_cells([TEST_CELL, "assert leak == [], leak"], key=key)
    assert unannounced[1].startswith("AssertionError: ["), unannounced


def test_a_marker_replayed_by_other_code_does_not_count():
    key = secrets.token_hex(32)
    cell = "def replay():\n    __import__('sys').audit('coursekit.reach', 'm1')\nreplay()\nraise AssertionError('the test failed')"
    results = run_cells([check("n1", arm=(mac(key, cell), "m1")), cell, check("n2", marker="m1")], key=key)
    assert results[1] == "AssertionError: the test failed"
    nonce, found, reached, forged, during, vetoed = report_of(results[2])
    assert reached is False and forged == "its last line was run from other code"


def test_code_a_test_cell_hands_to_student_code_cannot_be_read():
    key = secrets.token_hex(32)
    cell = ("### BEGIN HIDDEN TESTS\ndef checker():\n    return 'HIDDEN_VALUE_42'\nhanded = checker\n### END HIDDEN TESTS\n"
            "__import__('sys').audit('coursekit.reach', 'm1')")
    results = run_cells([check("n1", arm=(mac(key, cell), "m1")), cell, check("n2", marker="m1"),
                         "handed.__code__.co_consts", "import dis\ndis.dis(handed)",
                         "import inspect\ndef mine(a): pass\nassert inspect.signature(mine) and mine.__code__"], key=key)
    assert results[1] == "ok" and report_of(results[2])[2] is True
    assert "The grader forbids reading __code__" in results[3] and "The grader forbids reading __code__" in results[4]
    assert results[5] == "ok", "a notebook's own functions stay readable"


# Walks IPython's objects from get_ipython() (attributes, dicts, lists; not modules or classes) for a string.
SHELL_SCAN = '''
import types
needle = 'HIDDEN' + '_VALUE'
seen, found, todo = set(), [], [(get_ipython(), 'ip', 0)]
seen.update({id(needle), id(todo), id(found), id(seen)})
while todo:
    obj, path, depth = todo.pop()
    if id(obj) in seen or depth > 6: continue
    seen.add(id(obj))
    if isinstance(obj, str):
        if needle in obj: found.append(path)
        continue
    if isinstance(obj, bytes):
        if needle.encode() in obj: found.append(path)
        continue
    if isinstance(obj, (types.ModuleType, type)): continue
    try:
        if isinstance(obj, dict): items = [(repr(k)[:30], v) for k, v in list(obj.items())]
        elif isinstance(obj, (list, tuple, set, frozenset)): items = [(str(i), v) for i, v in enumerate(list(obj))]
        else: items = list(vars(obj).items()) if hasattr(obj, '__dict__') else []
    except Exception: continue
    for k, v in items[:2000]: todo.append((v, path + '.' + str(k), depth + 1))
print("FOUND", found[:20])
assert not found, found
'''


def test_ipython_s_objects_hold_no_hidden_line_while_the_test_runs():
    key = secrets.token_hex(32)
    cell = SHELL_SCAN + ("### BEGIN HIDDEN TESTS\nx = 'HIDDEN_VALUE_42'\n### END HIDDEN TESTS\n"
                         "__import__('sys').audit('coursekit.reach', 'm1')")
    results = run_cells([check("n1", arm=(mac(key, cell), "m1")), cell, check("n2", marker="m1")], key=key)
    assert results[1] == "ok", results[1]
    assert report_of(results[2])[2:4] == (True, None)
    # the control: the same cell, not announced by a probe, finds its hidden line in IPython's execution info
    assert "exec_result" in run_cells([cell], key=key)[0]


def test_a_cell_that_prints_without_end_is_stopped_in_its_own_print_and_the_next_cell_starts_afresh():
    """ipykernel buffers output in the kernel: a print loop filled gigabytes before the grader's cut reached it."""
    endless = "while True:\n    print('x' * 1_000_000)"
    results = run_cells([endless, "print('x' * 600)\nprint('y' * 300)", "print('x' * 600, 'y' * 600)",
                         "import io\nprint('z' * 5000, file=io.StringIO())"], max_output=1000)
    assert results[0].startswith("OutputLimitExceeded: [grader] this cell printed more than 1,000 characters")
    assert results[1] == "ok", results  # 902 characters: under the limit, counted from zero for this cell
    assert results[2].startswith("OutputLimitExceeded"), results
    assert results[3] == "ok", results  # printing into a file of its own is not output


def test_a_process_a_library_starts_for_itself_is_allowed_and_one_the_notebook_starts_is_refused():
    """matplotlib's font manager runs fc-list the first time it is imported in a fresh sandbox: an honest plot was
    reported as tampering. A notebook's own process, directly or through subprocess/os/asyncio, is still refused."""
    results = run_cells([
        "import platform\nplatform.architecture('/bin/sh')",  # platform.py runs `file` for its caller
        "import subprocess\nsubprocess.run(['true'])",
        "import os\nos.system('true')",
        "import asyncio\nawait asyncio.create_subprocess_exec('true')",
    ])
    assert results[0] == "ok", results
    assert all(r.startswith("RuntimeError: The grader forbids") for r in results[1:]), results


def test_matplotlib_s_own_callbacks_are_told_by_their_code_not_by_a_module_name_anyone_can_set():
    from matplotlib import pyplot

    def impostor(*args):
        pass

    impostor.__module__ = "matplotlib.pyplot"
    assert guard_state._from_matplotlib(pyplot._draw_all_if_interactive)
    assert not guard_state._from_matplotlib(impostor)
