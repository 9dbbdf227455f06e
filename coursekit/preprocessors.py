"""nbgrader preprocessors of the course, configured in nbgrader_config.py.

- `GuardedExecute` replaces nbgrader's Execute at autograde: a cell that prints without end (megabytes, then
  gigabytes) is stopped once it has printed `max_output_bytes`, instead of filling the grader's memory; and
  each notebook's time is logged split into kernel start/stop and running the cells. Each kernel may use at most
  `c.SandboxProvisioner.memory_limit` bytes of address space per process (a runaway allocation is a MemoryError in
  its cell) and, as root, of memory for all its processes together (coursekit.sandbox's control group).
- `DeduplicateCells` replaces nbgrader's DeduplicateIds at autograde: a student who copied a graded cell left
  nbgrader with an empty `nbgrader` metadata on the other copies, which its CheckCellMetadata takes for an old
  schema (SchemaTooOldError: the whole notebook goes ungraded). Here the other copies become plain cells.
  Removable when nbgrader grades a notebook with a copied cell: nbgrader issue 1083 (open in 0.9.6; PR 1753).
- `KeepCourseSkipTags` runs at autograde before GuardedExecute. nbclient, which runs the notebooks, skips the cells
  tagged `c.Execute.skip_cells_with_tag` (here `skip-when-grading`, the course's demo cells; by default
  `skip-execution`). A student could tag a test cell the same way, and a test cell that never runs raises
  nothing: full marks. So the tag stays only on the cells the master notebook in source/ tags.
  Removable when nbgrader ignores a skip tag the master notebook lacks (no upstream issue found as of nbgrader 0.9.6).
- `HideHiddenTestTracebacks` runs in generate_feedback before nbgrader's ClearHiddenTests: ClearHiddenTests
  removes the hidden tests from the cell's source, but a failing hidden assert still shows its own line (and
  the lines around it) in the error's traceback. This replaces those traceback frames with a short note.
  Removable when nbgrader's feedback hides hidden tests in tracebacks too: nbgrader issue 917 (open in 0.9.6).
"""
import asyncio
import time

try:
    import resource  # Unix only: the kernel memory limit is not set on Windows
except ImportError:
    resource = None

import nbformat
from jupyter_core.utils import run_sync
from nbformat.notebooknode import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import DeduplicateIds, Execute, NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

from . import kernel_guard, sandbox
from .cells import hidden_test_delimiters
from .integrity import IntegrityChecks
from .scrub import ANSI, hidden_lines

from .outcomes import CellChange, ChangeKind, Problem, ProblemKind, Timing, report

OUTPUT_CUT_NOTE = ("[grader] This cell printed more than {limit} of output: the rest was dropped and the cell "
                   "was stopped.\n")
OUT_OF_MEMORY_NOTE = ("[grader] While this cell ran, the kernel's processes together reached its memory limit "
                      "({limit}, files in its folder and /tmp included): {killed} of them were ended.\n")


class GuardedExecute(IntegrityChecks, Execute):
    """nbgrader's Execute, with its kernel in a sandbox, checks that no test cell's result was forged
    (coursekit.integrity), a cap on what one cell may print, a memory limit, and a timing line in the log."""

    check_integrity = Bool(
        True,
        help="Probe the kernel around every test cell (coursekit.integrity): hooks a student's code installed are "
             "put back, and a test cell whose result cannot be trusted scores 0.",
    ).tag(config=True)

    max_output_bytes = Integer(
        1_000_000,
        help="Most characters of output one cell may produce; beyond it the output is dropped and the cell "
             "interrupted (-1: no limit).",
    ).tag(config=True)

    unsafe_no_sandbox = Bool(
        False,
        help="Run grading kernels WITHOUT the bubblewrap sandbox (coursekit.sandbox): every submission then runs "
             "with the grader's rights and can change grades or other students' files. Only for trusted work, "
             "where no sandbox can run.",
    ).tag(config=True)

    def create_kernel_manager(self):
        """nbclient's kernel manager, whose kernel the sandbox provisioner starts (unless unsafe_no_sandbox)."""
        km = super().create_kernel_manager()
        if self.unsafe_no_sandbox:
            self.log.warning("coursekit: grading WITHOUT a sandbox (GuardedExecute.unsafe_no_sandbox)")
            return km
        reason = sandbox.unavailable_reason()
        if reason:
            raise sandbox.SandboxUnavailable(f"Grading refused: {reason} {sandbox.UNAVAILABLE_HELP}")
        # jupyter_client starts a kernel with the provisioner its kernel spec names (the local one by default). It
        # makes the provisioner with parent=km, and nbclient made km with this preprocessor's config: the
        # provisioner's settings (memory_limit, warm, preload_modules...) come from c.SandboxProvisioner, their home.
        km.kernel_spec.metadata["kernel_provisioner"] = {"provisioner_name": sandbox.PROVISIONER_NAME}
        return km

    def sandbox_settings(self) -> sandbox.SandboxProvisioner:
        """The sandbox's settings as this run's config sets them (c.SandboxProvisioner), without a kernel: the
        memory limit, warm kernels and the preload list have their one home there."""
        return sandbox.SandboxProvisioner(config=self.config)

    def preprocess(self, nb, resources=None, km=None):
        self._output_sizes: dict[int, int] = {}
        self._cut_cells: set[int] = set()
        self._pending: set[asyncio.Future] = set()
        self._kernel_seconds = 0.0
        # Where this notebook's records go (coursekit.outcomes.report), from the first moment: nbclient keeps the
        # resources in self.resources too, once it has started.
        resources = self.resources = {} if resources is None else resources
        started = time.perf_counter()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            self.report_integrity(resources.get("nbgrader", {}).get("notebook", "the notebook"), resources)
            total = time.perf_counter() - started
            notebook = resources.get("nbgrader", {}).get("notebook", "")
            report(Timing(notebook, self._kernel_seconds, total - self._kernel_seconds), resources, self.log)

    # Kernel start and stop: timed (the sync wrappers are what ExecutePreprocessor.preprocess calls).
    def start_new_kernel(self, **kwargs):
        started = time.perf_counter()
        try:
            result = super().start_new_kernel(**kwargs)
            self._limit_kernel_memory()
            return result
        finally:
            self._kernel_seconds += time.perf_counter() - started

    def _limit_kernel_memory(self):
        """Cap the new kernel's address space (Linux): a cell that allocates without end gets a MemoryError.

        Only without the sandbox: the sandbox sets its limits before the kernel starts.
        """
        if isinstance(getattr(self.km, "provisioner", None), sandbox.SandboxProvisioner):
            return
        process = getattr(getattr(self.km, "provisioner", None), "process", None)  # a local kernel's Popen
        limit = self.sandbox_settings().memory_limit  # the same setting as a sandboxed kernel's
        if limit <= 0 or not hasattr(resource, "prlimit") or process is None:  # prlimit: Linux
            return
        resource.prlimit(process.pid, resource.RLIMIT_AS, (limit, limit))

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        """A process of the kernel that the out-of-memory killer ended while the cell ran (the sandbox's control
        group counts them) is said in the cell, for the student; the sandbox reports it to the instructor."""
        provisioner = getattr(self.km, "provisioner", None)
        if not isinstance(provisioner, sandbox.SandboxProvisioner):
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        before = provisioner.out_of_memory_kills()
        cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        if killed := provisioner.out_of_memory_kills() - before:
            limit = f"{provisioner.memory_limit / 1024**3:.3g} GiB"
            cell.outputs.insert(0, NotebookNode(output_type="stream", name="stdout",
                                                text=OUT_OF_MEMORY_NOTE.format(limit=limit, killed=killed)))
        return cell

    execute_cell = run_sync(async_execute_cell)  # nbclient binds execute_cell to its own coroutine function

    def start_new_kernel_client(self):
        started = time.perf_counter()
        try:
            result = super().start_new_kernel_client()  # returns once the kernel is ready
            if isinstance(getattr(self.km, "provisioner", None), sandbox.SandboxProvisioner):
                self.km.provisioner.seal_connection_folder()  # before any cell runs
            return result
        finally:
            self._kernel_seconds += time.perf_counter() - started

    def _cleanup_kernel(self):
        started = time.perf_counter()
        provisioner = getattr(self.km, "provisioner", None)  # nbclient forgets the kernel manager on cleanup
        try:
            return super()._cleanup_kernel()
        finally:
            self._kernel_seconds += time.perf_counter() - started
            if getattr(provisioner, "memory_problem", None) is not None:  # the sandbox's count, taken at its cleanup
                report(provisioner.memory_problem, self.resources, self.log)

    def output(self, outs, msg, display_id, cell_index):
        if self.max_output_bytes < 0:
            return super().output(outs, msg, display_id, cell_index)
        if msg["msg_type"] == "error":
            if msg["content"].get("ename") == kernel_guard.OUTPUT_LIMIT_ERROR and cell_index not in self._cut_cells:
                self._cut(outs, cell_index)  # the kernel stopped the cell itself (guard_output.cap_output)
            return super().output(outs, msg, display_id, cell_index)
        if cell_index in self._cut_cells:
            return None  # dropped: this cell already printed too much
        size = self._output_sizes.get(cell_index, 0) + _size_of(msg["content"])
        self._output_sizes[cell_index] = size
        if size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        self._cut(outs, cell_index)
        interrupt = asyncio.ensure_future(self._interrupt())
        self._pending.add(interrupt)
        interrupt.add_done_callback(self._pending.discard)
        return None

    def _cut(self, outs, cell_index):
        """Report the cell as printing too much, and say so in its first output."""
        self._cut_cells.add(cell_index)
        limit = _human_size(self.max_output_bytes)
        report(Problem(ProblemKind.TOO_MUCH_OUTPUT, f"printed more than {limit}; the output was cut and the cell stopped",
                       cells=(_cell_name(self.nb.cells[cell_index], cell_index),)), self.resources, self.log)
        # First output of the cell, so that nbgrader's LimitOutput (which keeps the first lines) keeps the note.
        outs.insert(0, NotebookNode(output_type="stream", name="stdout", text=OUTPUT_CUT_NOTE.format(limit=limit)))

    def clear_output(self, outs, msg, cell_index):
        """A cell that redraws its output (a progress display) only keeps what it shows now: count from zero."""
        self._output_sizes.pop(cell_index, None)
        return super().clear_output(outs, msg, cell_index)

    async def _interrupt(self):
        result = self.km.interrupt_kernel()
        if asyncio.iscoroutine(result):
            await result


def _size_of(content: dict) -> int:
    if "text" in content:
        return len(content["text"])
    return sum(len(value) if isinstance(value, str) else len(str(value)) for value in content.get("data", {}).values())


def _human_size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n / 1000:g} kB"


def _cell_name(cell, index: int) -> str:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"#{index + 1}"


class DeduplicateCells(DeduplicateIds):
    """nbgrader's DeduplicateIds (the last copy of a cell keeps its grade id), leaving the others plain cells.

    Removable when nbgrader grades a notebook with a copied cell instead of raising SchemaTooOldError:
    https://github.com/jupyter/nbgrader/issues/1083 (open as of nbgrader 0.9.6; PR 1753 proposes a fix).
    """

    def preprocess_cell(self, cell, resources, index):
        grade_id = _grade_id(cell)
        cell, resources = super().preprocess_cell(cell, resources, index)
        if "nbgrader" in cell.get("metadata", {}) and not cell.metadata.nbgrader:
            del cell.metadata["nbgrader"]
            if grade_id:  # a copy that DeduplicateIds stripped (not a cell that came with empty metadata)
                report(CellChange(ChangeKind.COPIED, grade_id, resources.get("nbgrader", {}).get("notebook", "")),
                       resources, self.log)
        return cell, resources


class KeepCourseSkipTags(NbGraderPreprocessor):
    """The tag that makes Execute skip a cell stays only on the cells that carry it in source/ (by grade id).

    Removable when nbgrader ignores a skip tag the master notebook lacks: OverwriteCells restores a test cell's source
    but not its tags (no upstream issue found as of nbgrader 0.9.6).
    """

    def preprocess(self, nb, resources):
        tag = self.config.Execute.get("skip_cells_with_tag", "skip-execution")  # nbclient's default
        course_tagged = self._tagged_in_source(tag, resources["nbgrader"]["assignment"], resources["nbgrader"]["notebook"])
        for index, cell in enumerate(nb.cells):
            tags = cell.get("metadata", {}).get("tags", [])
            if tag in tags and _grade_id(cell) not in course_tagged:
                tags.remove(tag)
                self.log.warning("Cell %s is tagged %s but not in source/: it runs", _cell_name(cell, index), tag)
        return nb, resources

    def _tagged_in_source(self, tag: str, assignment: str, notebook: str) -> set[str]:
        """Grade ids of the master notebook's cells tagged `tag` (none if it cannot be read)."""
        coursedir = CourseDirectory(config=self.config)
        path = f"{coursedir.format_path(coursedir.source_directory, '.', assignment)}/{notebook}.ipynb"
        try:
            master = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as error:
            self.log.warning("Cannot read %s (%s): every cell runs", path, error)
            return set()
        return {_grade_id(c) for c in master.cells if tag in c.get("metadata", {}).get("tags", []) and _grade_id(c)}


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


class HideHiddenTestTracebacks(NbGraderPreprocessor):
    """In cells with hidden tests, replace the traceback frames that show the cell's own code with a note.

    The delimiters are nbgrader's ClearHiddenTests' (`cells.hidden_test_delimiters`), as the course configures them.
    Removable when nbgrader's feedback also hides hidden tests in tracebacks: nbgrader issue 917, open as of 0.9.6
    (https://github.com/jupyter/nbgrader/issues/917; issue 1156, closed as its duplicate, names the traceback).
    """

    note = Unicode("(the failing line is in the hidden tests, which are not shown)").tag(config=True)

    def preprocess(self, nb, resources):
        self._delimiters = hidden_test_delimiters(self.config)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        begin, end = self._delimiters
        if cell.cell_type != "code" or begin not in cell.source:
            return cell, resources
        hidden = [line for line in hidden_lines(cell.source, begin, end) if len(line) >= 8]  # not by chance
        own_frame = f"Cell In[{cell.get('execution_count')}]" if cell.get("execution_count") else None
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            kept = []
            for entry in output.traceback:
                plain = ANSI.sub("", entry)
                if (own_frame and plain.lstrip().startswith(own_frame)) or any(line in plain for line in hidden):
                    header = plain.strip().splitlines()[0] if own_frame and plain.lstrip().startswith(own_frame) else ""
                    kept.append(f"{header}\n{self.note}".strip())
                else:
                    kept.append(entry)
            output.traceback = kept
        return cell, resources
