"""Scores student code cannot forge: `IntegrityChecks`, mixed into the course's Execute preprocessor.

nbgrader scores a test cell by its outputs, inside the student's own kernel: a cell that shows no error earns its
points. One line in an answer cell can make every later error vanish (a custom exception handler, an input or AST
transformer, an event callback, a trace function...). So around every test cell the grader runs, through the same
channel as the notebook's cells, a probe of its own:

0. before any cell, `kernel_guard.install` adds the grader's audit hook to the kernel, with a key (HMAC) made for
   this kernel; the hook vetoes what tampering and reading hidden tests need, and records each veto;
1. the probe asks the hook (`sys.audit("coursekit.check", ...)`): every hook of IPython that differs from the state
   noted at start is reported and put back (`kernel_guard.Guard`), so that the test cell runs in the interpreter the
   course set up (hooks found: reported, and the test then runs honestly);
2. a canary: the probe raises, as an error, the hook's report signed with the key. If that error does not come back
   to the grader, or its signature does not hold (a fake check, a replaced `sys.audit`), the interpreter hides
   errors or lies: no later test cell can be trusted;
3. the test cell runs with one line added at its end, which records a random marker in the hook, counted only
   when that line runs as the test cell's own code: a cell that shows no error but did not reach its last line
   was stopped silently. Test cells and probes are silent requests (`GraderClient`): never in `In`, `_ih`, `_iN`,
   and never echoed on IOPub as an `execute_input` message, which ipykernel publishes before the cell runs (so
   before the hook can blank anything) to whatever listens there, student code in the kernel included; while a
   test runs the hook blanks its hidden tests in the kernel's copies of its source;
4. after the cell, the same probe again: hooks installed while the test ran (by student code it called), a veto
   while it ran, a canary that does not come back, or a missing marker mean the cell's result cannot be trusted.

A test cell whose result cannot be trusted scores 0: the grader gives it an error output (`GradingIntegrityError`)
that says why, which nbgrader scores 0 and the student sees in the feedback. Each finding is reported as
`Problem(ProblemKind.TAMPERED, ...)`. What a student can still do is written in the README's "Security" section.
"""
import ast
import builtins
import hashlib
import hmac
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_core.utils import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils

from . import kernel_guard
from .outcomes import Problem, ProblemKind, report

# Folders whose code the hook counts as the environment's, besides Python's own: coursekit's (a warm kernel's
# template runs coursekit/warm_template.py and warm_entry.py).
ENVIRONMENT_ROOTS = (str(Path(kernel_guard.__file__).resolve().parent),)
INTEGRITY_ERROR = "GradingIntegrityError"
STUDENT_ADVICE = ("Code in the notebook changed how Python runs cells or reports errors; remove it, restart the kernel "
                  "and run every cell again.")


@dataclass
class ProbeResult:
    answered: bool  # the guard's report came back
    canary_raised: bool  # the error the probe raised on purpose came back
    found: list[str] = field(default_factory=list)  # hooks the guard found changed and put back
    reached: bool | None = None  # whether the test cell's marker was recorded (after a cell)
    forged: str | None = None  # how the test cell's last line was run from other code (after a cell)
    vetoed_during_test: list[str] = field(default_factory=list)  # what the hook vetoed while the test ran
    vetoed: list[str] = field(default_factory=list)  # what the hook vetoed since the last probe
    history_count: int | None = None  # the execution count of the kernel's last cell kept in its history

    @property
    def trustworthy(self) -> bool:
        return self.answered and self.canary_raised


@dataclass
class NotebookIntegrity:
    """What the probes found in one notebook."""

    lost: str | None = None  # why no later test cell can be trusted
    untrusted: dict[str, str] = field(default_factory=dict)  # test cell -> why it scored 0
    restored: dict[str, None] = field(default_factory=dict)  # hooks put back before the tests (ordered set)
    kernel_silent: bool = False  # a probe timed out: the kernel stopped answering (not tampering as such)
    vetoed: dict[str, None] = field(default_factory=dict)  # what the grader's audit hook refused (ordered set)
    failed_since_check: bool = False  # a cell failed since the last probe: the next one collects its garbage


def builtin_names(source: str) -> tuple[str, ...]:
    """The built-in names (len, isinstance...) a cell's code reads."""
    try:
        tree = compile(source, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):  # IPython magics: no names checked
        return ()
    return tuple(sorted({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)
                         and isinstance(node.ctx, ast.Load) and node.id in vars(builtins)}))


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def integrity_error(reason: str) -> NotebookNode:
    """The output that makes nbgrader score a test cell 0, and tells the student why."""
    text = f"The grader could not trust this test cell's result: {reason}. {STUDENT_ADVICE}"
    return NotebookNode(output_type="error", ename=INTEGRITY_ERROR, evalue=text, traceback=[f"{INTEGRITY_ERROR}: {text}"])


class GraderClient(AsyncKernelClient):
    """nbclient's kernel client, whose execute requests are silent while `silent_requests()` holds.

    nbclient sends a cell with `kc.execute(source, store_history=..., stop_on_error=...)` and no way to ask for
    silence. A silent request is one ipykernel does not echo on IOPub (no `execute_input`: a test cell's hidden
    tests never travel there) and IPython runs without `pre_run_cell`/`post_run_cell` callbacks and without
    displaying its last expression (a test cell sent by the grader ends with its marker line, which shows nothing
    either). Its errors, its printed output and its execute reply come back as for any request.
    """

    silent = False

    @contextmanager
    def silent_requests(self):
        self.silent = True
        try:
            yield
        finally:
            self.silent = False

    def execute(self, code, silent=False, *args, **kwargs):
        return super().execute(code, silent or self.silent, *args, **kwargs)


class IntegrityChecks:
    """Mixin for nbgrader's Execute (an nbclient NotebookClient): the probes around every test cell.

    The class using it defines the trait `check_integrity`.
    """

    integrity: NotebookIntegrity | None = None

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.check_integrity:
            km.client_factory = GraderClient  # test cells and probes go as silent requests
        return km

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        self.integrity = None
        if self.check_integrity:
            if not isinstance(kc, GraderClient):  # a kernel manager made elsewhere: test cells would be echoed
                raise RuntimeError("coursekit: grading needs the kernel client coursekit.integrity.GraderClient "
                                   f"(got {type(kc).__name__})")
            await self._install_guard()
            self.integrity = NotebookIntegrity()
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _install_guard(self) -> None:
        """Send the guard's source and a new key to the kernel before any cell runs (kernel_guard.install_request):
        its audit hook starts there.

        The key travels once, in this request; `install` keeps it only in the hook's closure and blanks this
        request's copy, and a second request replaces IPython's record of this one.
        """
        self._key = secrets.token_bytes(32)
        begin, end = self._hidden_delimiters()
        # The course's own cells (locked, restored from the gradebook by nbgrader): the hook trusts their code.
        trusted = sorted({self._mac(cell.source.strip()) for cell in getattr(self, "nb", {"cells": []})["cells"]
                          if cell.cell_type == "code" and utils.is_locked(cell) and not utils.is_solution(cell)})
        settings = {"begin": begin, "end": end, "roots": ENVIRONMENT_ROOTS, "trusted": trusted,
                    "max_output": getattr(self, "max_output_bytes", -1)}
        code = kernel_guard.install_request(self._key.hex(), settings)
        for request in (code, "pass\n"):
            reply = await ensure_async(self.kc.execute_interactive(
                request, silent=True, store_history=False, allow_stdin=False, timeout=self._probe_timeout(),
                output_hook=lambda msg: None))
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"coursekit: the grader's guard could not start in the kernel: {reply['content']}")

    def _hidden_delimiters(self) -> tuple[str, str]:
        """nbgrader's hidden-test delimiters, as its ClearHiddenTests is configured (one home for them)."""
        from nbgrader.preprocessors import ClearHiddenTests
        clear = ClearHiddenTests(parent=self)
        return clear.begin_test_delimeter, clear.end_test_delimeter

    def _probe_timeout(self) -> float:
        return float(self.timeout or 60)

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    async def _probe(self, names: tuple[str, ...] = (), marker: str | None = None,
                     arm: tuple[str, str] | None = None) -> ProbeResult | None:
        """Ask the kernel's audit hook for its signed report, which the probe raises as its error (the canary).

        None when the kernel did not answer in time. arm: (MAC of the test cell's source, its marker), for the
        test cell that runs next.
        """
        nonce = secrets.token_hex(8)
        collect, self.integrity.failed_since_check = self.integrity.failed_since_check, False
        args = ", ".join(repr(a) for a in (nonce, names, marker, collect, arm))
        code = (f"raise AssertionError(*(lambda b: (__import__('sys').audit({kernel_guard.CHECK_EVENT!r}, {args}, b), "
                f"b)[1])([]))\n")
        errors = []

        def collect_errors(msg):
            if msg["msg_type"] == "error":
                errors.append(msg["content"].get("evalue", ""))

        try:
            reply = await ensure_async(self.kc.execute_interactive(
                code, silent=True, store_history=False, stop_on_error=False, allow_stdin=False,
                timeout=self._probe_timeout(), output_hook=collect_errors))
        except TimeoutError:
            return None
        result = ProbeResult(answered=False, canary_raised=False,
                             history_count=reply["content"].get("execution_count"))
        for evalue in errors:
            report, _, signature = evalue.rpartition("|")
            if not report or not hmac.compare_digest(signature, self._mac(report)):
                continue
            try:
                answer = ast.literal_eval(report)
            except (ValueError, SyntaxError):
                continue
            if isinstance(answer, tuple) and len(answer) == 6 and answer[0] == nonce:
                result.answered = True
                result.canary_raised = reply["content"]["status"] == "error"
                _, found, result.reached, result.forged, during, vetoed = answer
                result.found, result.vetoed_during_test, result.vetoed = list(found), list(during), list(vetoed)
        self.integrity.vetoed.update(dict.fromkeys(result.vetoed))
        return result

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        state = self.integrity
        if (state is None or not is_test_cell(cell) or not cell.source.strip()
                or self.skip_cells_with_tag in cell.metadata.get("tags", [])):
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            if state is not None and any(o.output_type == "error" for o in cell.get("outputs", [])):
                state.failed_since_check = True
            return cell
        name = cell.metadata.get("nbgrader", {}).get("grade_id") or f"#{cell_index + 1}"
        if state.lost:
            return self._untrusted(cell, name, state.lost)
        if not await ensure_async(self.km.is_alive()):  # nbclient reports the dead kernel
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

        marker = secrets.token_hex(8)
        source = cell.source
        sent = f"{source.rstrip()}\n__import__('sys').audit({kernel_guard.REACH_EVENT!r}, {marker!r})"
        before = await self._probe(builtin_names(source), arm=(self._mac(sent.strip()), marker))
        if not self._trust(before, name, "before"):
            return self._untrusted(cell, name, state.lost)
        state.restored.update(dict.fromkeys(before.found))

        cell.source = sent
        # A silent request sends no execute_input, which gave the cell its prompt number: the number the next cell
        # kept in the history gets, as before.
        if not execution_count and isinstance(before.history_count, int):
            execution_count = before.history_count + 1
        try:  # silent: a test cell's source never reaches IOPub, In, _ih, _iN or the history
            with self.kc.silent_requests():
                cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history=False)
        finally:
            cell.source = source
        if not await ensure_async(self.km.is_alive()):
            return cell

        failed = any(output.output_type == "error" for output in cell.outputs)
        state.failed_since_check |= failed  # the probe collects what the failed test left (Guard.collect_garbage)
        after = await self._probe(marker=marker)
        if not self._trust(after, name, "after"):
            return self._untrusted(cell, name, state.lost)
        if after.found:
            state.restored.update(dict.fromkeys(after.found))
            return self._untrusted(cell, name, f"code run by this test changed {', '.join(after.found)}")
        if after.vetoed_during_test:
            return self._untrusted(cell, name, f"code run by this test tried {', '.join(after.vetoed_during_test)}")
        if after.forged:
            return self._untrusted(cell, name, after.forged)
        if not failed and not after.reached:
            return self._untrusted(cell, name, "it stopped before its last line without showing an error")
        return cell

    def _trust(self, probe: ProbeResult | None, name: str, when: str) -> bool:
        """Whether the probe shows an interpreter that reports errors; if not, the rest of the notebook is lost."""
        state = self.integrity
        if probe is None:
            state.kernel_silent = True
            state.lost = "the kernel stopped answering the grader"
        elif not probe.answered:
            state.lost = f"the grader's check {when} {name} did not run (the interpreter was changed)"
        elif not probe.canary_raised:
            state.lost = f"an error the grader raised on purpose {when} {name} was hidden (errors are being hidden)"
        else:
            return True
        return False

    def _untrusted(self, cell, name: str, reason: str):
        self.integrity.untrusted[name] = reason
        cell.outputs = [*[o for o in cell.get("outputs", []) if o.get("ename") != INTEGRITY_ERROR],
                        integrity_error(reason)]
        return cell

    execute_cell = run_sync(async_execute_cell)

    def report_integrity(self, notebook: str, resources: dict) -> None:
        """Report what the probes found in this notebook into its resources (call once, after its last cell)."""
        state = self.integrity
        if state is None:
            return
        if state.kernel_silent:
            report(Problem(ProblemKind.TIMED_OUT, f"{notebook}: the kernel stopped answering; the test cells after "
                                                  "that scored 0", tuple(state.untrusted)), resources, self.log)
            return
        parts = []
        if state.untrusted:
            reasons = dict.fromkeys(state.untrusted.values())
            parts.append(f"{len(state.untrusted)} test cell(s) scored 0 ({'; '.join(reasons)})")
        if state.restored:
            parts.append(f"put back before the tests: {', '.join(state.restored)}")
        if state.vetoed:
            parts.append(f"the grader refused: {', '.join(state.vetoed)}")
        if parts:
            problem = Problem(ProblemKind.TAMPERED, f"{notebook}: " + "; ".join(parts), tuple(state.untrusted))
            report(problem, resources, self.log)
