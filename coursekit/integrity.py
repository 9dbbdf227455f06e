"""Scores student code cannot forge: `IntegrityChecks`, mixed into the course's Execute preprocessor.

nbgrader scores a test cell by its outputs, inside the student's own kernel: a cell that shows no error earns its
points. One line in an answer cell can make every later error vanish (a custom exception handler, an input or AST
transformer, an event callback, a trace function...). So around every test cell the grader runs, through the same
channel as the notebook's cells, a probe of its own:

1. `kernel_guard.Guard.check`: every hook that differs from the state noted when the kernel started is reported and
   put back, so that the test cell runs in the interpreter the course set up (hooks found: reported, and the test
   then runs honestly);
2. a canary: the probe ends by raising an error with a random message. If that error does not come back to the
   grader, the interpreter hides errors even after the restore: no later test cell can be trusted;
3. the test cell runs with one line added at its end, which records a random marker: a cell that shows no error
   but did not reach its last line was stopped silently;
4. after the cell, the same probe again: hooks installed while the test ran (by student code it called), a canary
   that does not come back, or a missing marker mean the cell's result cannot be trusted.

A test cell whose result cannot be trusted scores 0: the grader gives it an error output (`GradingIntegrityError`)
that says why, which nbgrader scores 0 and the student sees in the feedback. Each finding is reported as
`Problem(ProblemKind.TAMPERED, ...)`. What a student can still do is written in the README's "Security" section.
"""
import ast
import builtins
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_core.utils import ensure_async, run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader import utils

from . import kernel_guard
from .outcomes import Problem, ProblemKind, report

GUARD_SOURCE = Path(kernel_guard.__file__).read_text(encoding="utf-8")
GUARD = f'__import__("sys").modules["{kernel_guard.MODULE}"].guard'
INTEGRITY_ERROR = "GradingIntegrityError"
STUDENT_ADVICE = ("Code in the notebook changed how Python runs cells or reports errors; remove it, restart the kernel "
                  "and run every cell again.")


@dataclass
class ProbeResult:
    answered: bool  # the guard's report came back
    canary_raised: bool  # the error the probe raised on purpose came back
    found: list[str] = field(default_factory=list)  # hooks the guard found changed and put back
    reached: bool | None = None  # whether the test cell's marker was recorded (after a cell)

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


class IntegrityChecks:
    """Mixin for nbgrader's Execute (an nbclient NotebookClient): the probes around every test cell.

    The class using it defines the trait `check_integrity`.
    """

    integrity: NotebookIntegrity | None = None

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        self.integrity = None
        if self.check_integrity:
            await self._install_guard()
            self.integrity = NotebookIntegrity()
        return kc

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _install_guard(self) -> None:
        """Send kernel_guard's source to the kernel before any cell runs: it notes the pristine state there."""
        module = kernel_guard.MODULE
        code = (f"import sys as _s, types as _t\n_m = _t.ModuleType({module!r})\n"
                f"exec(compile({GUARD_SOURCE!r}, 'coursekit-guard', 'exec'), _m.__dict__)\n"
                f"_s.modules[{module!r}] = _m\n_m.install(get_ipython())\ndel _s, _t, _m\n")
        reply = await ensure_async(self.kc.execute_interactive(
            code, silent=True, store_history=False, allow_stdin=False, timeout=self._probe_timeout(),
            output_hook=lambda msg: None))
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"coursekit: the grader's guard could not start in the kernel: {reply['content']}")

    def _probe_timeout(self) -> float:
        return float(self.timeout or 60)

    async def _probe(self, names: tuple[str, ...] = (), marker: str | None = None) -> ProbeResult | None:
        """Run the guard's check and a canary error in the kernel; None when the kernel did not answer in time."""
        nonce, canary = secrets.token_hex(8), secrets.token_hex(8)
        collect, self.integrity.failed_since_check = self.integrity.failed_since_check, False
        code = f"{GUARD}.check({nonce!r}, {names!r}, {marker!r}, {collect!r});\nraise AssertionError({canary!r})\n"
        texts, errors = [], []

        def collect(msg):
            if msg["msg_type"] == "stream":
                texts.append(msg["content"].get("text", ""))
            elif msg["msg_type"] == "error":
                errors.append(msg["content"].get("evalue", ""))

        try:
            reply = await ensure_async(self.kc.execute_interactive(
                code, store_history=True, stop_on_error=False, allow_stdin=False, timeout=self._probe_timeout(),
                output_hook=collect))
        except TimeoutError:
            return None
        result = ProbeResult(answered=False, canary_raised=canary in errors and reply["content"]["status"] == "error")
        for line in "".join(texts).splitlines():
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            if isinstance(answer, dict) and answer.get("guard") == nonce:
                result.answered, result.found, result.reached = True, list(answer["found"]), answer["reached"]
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

        before = await self._probe(builtin_names(cell.source))
        if not self._trust(before, name, "before"):
            return self._untrusted(cell, name, state.lost)
        state.restored.update(dict.fromkeys(before.found))

        marker = secrets.token_hex(8)
        source = cell.source
        cell.source = f"{source.rstrip()}\n{GUARD}.reach({marker!r})"
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
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

    def report_integrity(self, notebook: str) -> None:
        """Report what the probes found in this notebook (call once, after its last cell)."""
        state = self.integrity
        if state is None:
            return
        if state.kernel_silent:
            report(Problem(ProblemKind.TIMED_OUT, f"{notebook}: the kernel stopped answering; the test cells after "
                                                  "that scored 0", tuple(state.untrusted)), self.log)
            return
        parts = []
        if state.untrusted:
            reasons = dict.fromkeys(state.untrusted.values())
            parts.append(f"{len(state.untrusted)} test cell(s) scored 0 ({'; '.join(reasons)})")
        if state.restored:
            parts.append(f"put back before the tests: {', '.join(state.restored)}")
        if parts:
            report(Problem(ProblemKind.TAMPERED, f"{notebook}: " + "; ".join(parts), tuple(state.untrusted)), self.log)
