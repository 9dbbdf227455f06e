"""Grades forged by code that knows the grader (issue 19, part 3).

Each student hands in the blank Section 1 notebook with one attack written by someone who has read coursekit's
grader, so any point it earns is forged: the two that gave a blank notebook 14/14 before the grader's audit hook
(an audit hook that hides errors only while a test cell runs; the guard's check replaced by a fake), and others
aimed at the hook itself (a fake `sys.audit`, a replaced `sys` module, a report suppressed, the test's last line
run by other code, the probes told apart from the tests by reading the kernel's request). Honest classmates are
graded in the same run by the same two workers and keep full marks.
"""
import textwrap

import pytest
from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.outcomes import ProblemKind
from coursekit.testing import make_course_folder

pytestmark = pytest.mark.slow  # grades a class of submissions

ASSIGNMENT = "01-async-database"
CELL_TIMEOUT = 20

# Shared by the attacks below: hide every error, and make the kernel's execute reply say "ok".
HIDE_ERRORS = """
from IPython.core import interactiveshell as _shell
def _hide(*args, **kwargs):
    return None
def _clear_status(result):
    result.error_in_exec = result.error_before_exec = None
_shell.ExecutionResult.success = property(lambda self: True)
"""

FORGERY_ATTACKS = {
    # (a) of the issue: an audit hook installs an error-hiding handler as each test cell compiles and removes it as
    # each probe compiles (it tells them apart by the grader's names in the source).
    "audit-hook-tells-probes-from-tests": HIDE_ERRORS + """
import sys
def _spy(event, args):
    if event != "compile" or not isinstance(args[0], (bytes, str)):
        return
    source = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
    if "coursekit" in source or "_coursekit_guard" in source:
        get_ipython().set_custom_exc((), None)
    elif "assert" in source:
        get_ipython().set_custom_exc((BaseException,), _hide)
sys.addaudithook(_spy)
""",
    # (b) of the issue: the guard's check replaced by a fake that answers "all clear" for the nonce it is given.
    "fake-guard-check": HIDE_ERRORS + """
import json, sys
for _module in list(sys.modules.values()):
    _guard = getattr(_module, "guard", None)
    if hasattr(_guard, "check"):
        _guard.check = lambda nonce, names=(), marker=None, collect=False: print(json.dumps(
            {"guard": nonce, "found": [], "reached": True}))
get_ipython().set_custom_exc((BaseException,), _hide)
""",
    # (b) against the audit hook: a fake sys.audit answers the check with an "all clear" report, unsigned.
    "fake-sys-audit": HIDE_ERRORS + """
import sys
_real_audit = sys.audit
def _fake_audit(event, *args):
    if event == "coursekit.check":
        nonce, names, marker, collect, arm, box = args
        box.append(repr((nonce, [], True if marker else None, None, [], [])) + "|" + "0" * 64)
        return None
    return _real_audit(event, *args)
sys.audit = _fake_audit
get_ipython().set_custom_exc((BaseException,), _hide)
""",
    # the sys module itself replaced (what `__import__("sys")` finds), with the same fake audit
    "replaced-sys-module": HIDE_ERRORS + """
import sys, types
_fake_sys = types.ModuleType("sys")
_fake_sys.__dict__.update(vars(sys))
_fake_sys.audit = lambda event, *args: None
sys.modules["sys"] = _fake_sys
get_ipython().set_custom_exc((BaseException,), _hide)
""",
    # the report suppressed: nothing the probe raises reaches the grader, while tests' errors are hidden too
    "suppresses-the-report": """
import builtins
_real_import = builtins.__import__
def _no_sys(name, *args, **kwargs):
    if name == "sys":
        raise SystemExit  # the probe never reaches its report
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _no_sys
get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
""",
    # a thread watches the kernel's current request: it hides errors while a test runs, lets the probes' errors
    # through, and runs the test's last line (the marker, read from the request) itself.
    "thread-reads-the-request-and-forges-the-marker": """
import re, sys, threading, time
def _watch():
    ip = get_ipython()
    seen = None
    while True:
        code = ip.kernel.get_parent().get("content", {}).get("code", "")
        if code is not seen:
            seen = code
            found = re.search(r"audit\\('coursekit.reach', '([0-9a-f]+)'\\)", code)
            if found:
                ip.set_custom_exc((BaseException,), lambda *a, **k: None)
                sys.audit("coursekit.reach", found.group(1))
            elif "coursekit.check" in code:
                ip.set_custom_exc((), None)
        time.sleep(0.0005)
threading.Thread(target=_watch, daemon=True).start()
""",
    # the guard's class (reachable through object.__subclasses__()) made to find nothing, its module's globals and
    # the builtins the hook might use rebound, then errors hidden
    "disarms-the-guard-class-and-globals": """
import builtins
for cls in object.__subclasses__():
    if cls.__name__ == "Guard":
        cls.findings = lambda self, names=(), collect=False: []
        cls.restore = lambda self: []
        cls.__init__.__globals__.update(EVENTS=frozenset(), ALWAYS_VETOED=frozenset(), GUARD_FILE="<ipython-input")
builtins.any = builtins.all = lambda *args: True
get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)
""",
    # the test's last line compiled under the test cell's own file name (read from linecache) and run by IPython
    "runs-the-marker-under-the-test-s-name": """
import linecache, sys, threading, time, ast
def _forge():
    ip = get_ipython()
    done = set()
    while True:
        for name, entry in list(linecache.cache.items()):
            text = "".join(entry[2]) if len(entry) > 2 and entry[2] else ""
            if name in done or "coursekit.reach" not in text:
                continue
            done.add(name)
            last = [line for line in text.splitlines() if "coursekit.reach" in line][-1]
            ip.set_custom_exc((BaseException,), lambda *a, **k: None)
            try:
                exec(compile(last, name, "exec"), ip.user_ns)
            except BaseException:
                pass
        time.sleep(0.0005)
threading.Thread(target=_forge, daemon=True).start()
""",
}


def submission_with_attack(attack: str) -> dict:
    blank = subs.blank_submission(ASSIGNMENT)
    first_answer = next(iter(subs.autograded_exercises(blank)))
    return subs.with_answers(blank, {first_answer: textwrap.dedent(attack).strip() + "\n"})


@pytest.fixture(scope="module")
def forging_class(tmp_path_factory):
    course = make_course_folder(tmp_path_factory.mktemp("forgery"), [ASSIGNMENT])
    students = {"honest-1": subs.correct_submission(ASSIGNMENT), "honest-2": subs.correct_submission(ASSIGNMENT),
                **{name: submission_with_attack(attack) for name, attack in FORGERY_ATTACKS.items()}}
    for student, notebook in students.items():
        subs.write_submission(course, student, ASSIGNMENT, notebook)
    results = grade_assignment(course, ASSIGNMENT, config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": CELL_TIMEOUT}}))
    return {r.student: r for r in results}


@pytest.mark.parametrize("student", ["honest-1", "honest-2"])
def test_honest_students_keep_full_marks_next_to_forgers(forging_class, student):
    result = forging_class[student]
    assert result.problem is None, result.problem
    assert result.max_score > 0 and result.scores == result.max_scores


@pytest.mark.parametrize("student", FORGERY_ATTACKS)
def test_a_grader_aware_forgery_earns_nothing_and_is_reported(forging_class, student):
    result = forging_class[student]
    assert result.scores and set(result.scores.values()) == {0.0}, f"forged points: {result.scores}"
    assert result.problem and result.problem.kind is ProblemKind.TAMPERED, result.problem


def test_the_report_names_what_the_grader_refused(forging_class):
    assert "sys.addaudithook" in str(forging_class["audit-hook-tells-probes-from-tests"].problem)
