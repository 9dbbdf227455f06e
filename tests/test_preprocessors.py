"""The course's nbgrader preprocessors on small in-memory notebooks, in the nbgrader manner: no kernel, no files
beyond a throwaway gradebook. Each reports what it did as a typed record (coursekit.outcomes)."""
import asyncio
import copy
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ComputeChecksums, SaveCells
from traitlets.config import Config

from coursekit import outcomes
from coursekit.nbgrader_cli import ENV_WITH_VENV
from coursekit.outcomes import CellChange, ChangeKind, ProblemKind
from coursekit.preprocessors import DeduplicateCells, GuardedExecute, HideHiddenTestTracebacks, KeepCourseSkipTags
from coursekit.restore_cells import RestoreMissingCells
from coursekit.sandbox import SandboxProvisioner


def cell(kind, name, source, **nbgrader):
    meta = {"grade_id": name, "schema_version": 3, "grade": False, "solution": False, "locked": False, **nbgrader}
    make = new_code_cell if kind == "code" else new_markdown_cell
    return make(source, metadata={"nbgrader": meta})


HIDDEN = "assert add(1, 1) == 2\n### BEGIN HIDDEN TESTS\nassert add(2, 2) == 4\n### END HIDDEN TESTS"


def master():
    """A master notebook: locked setup, an answer, its test (with hidden tests), a second test."""
    return new_notebook(cells=[
        cell("code", "setup", "import math", locked=True),
        cell("code", "add", "def add(a, b):\n    return a + b", solution=True),
        cell("code", "test_add_1", HIDDEN, grade=True, locked=True, points=2),
        cell("code", "test_add_2", "assert add(0, 0) == 0", grade=True, locked=True, points=1),
    ])


def released(notebook):
    """What students receive: the hidden tests removed (as nbgrader's generate_assignment does)."""
    notebook = copy.deepcopy(notebook)
    notebook.cells[2].source = "assert add(1, 1) == 2"
    return notebook


@pytest.fixture(scope="module")
def master_gradebook(tmp_path_factory):
    """A gradebook that knows the master notebook, filled by nbgrader's own SaveCells (made once: nbgrader runs
    alembic in a subprocess to create it)."""
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", ENV_WITH_VENV["PATH"])  # nbgrader runs `alembic` by name
        with Gradebook(f"sqlite:///{path}") as gb:
            gb.add_assignment("a")
    resources = {"nbgrader": {"db_url": f"sqlite:///{path}", "assignment": "a", "notebook": "nb"}}
    notebook, _ = ComputeChecksums().preprocess(master(), resources)
    SaveCells().preprocess(notebook, resources)
    return path


@pytest.fixture
def gradebook(master_gradebook, tmp_path):
    """A fresh copy of the master's gradebook, as resources nbgrader's preprocessors read."""
    shutil.copy(master_gradebook, tmp_path / "gradebook.db")
    return {"nbgrader": {"db_url": f"sqlite:///{tmp_path / 'gradebook.db'}", "assignment": "a", "notebook": "nb"}}


def restore(notebook, resources):
    config = Config()
    config.OverwriteCells.add_missing_cells = True
    notebook, _ = ComputeChecksums().preprocess(notebook, {})
    resources = copy.deepcopy(resources)
    notebook, _ = RestoreMissingCells(config=config).preprocess(notebook, resources)
    return notebook, outcomes.records(resources)


def test_an_untouched_submission_reports_no_change_even_with_hidden_tests(gradebook):
    submitted = released(ComputeChecksums().preprocess(master(), {})[0])
    notebook, changes = restore(submitted, gradebook)
    assert changes == []
    assert notebook.cells[2].source == HIDDEN, "the hidden tests are back for grading"


def test_an_edited_test_cell_is_put_back_and_reported(gradebook):
    submitted = released(master())
    submitted.cells[3].source = "pass"
    notebook, changes = restore(submitted, gradebook)
    assert notebook.cells[3].source == "assert add(0, 0) == 0"
    assert changes == [CellChange(ChangeKind.EDITED, "test_add_2", "nb")]


def test_a_deleted_test_cell_after_a_locked_cell_is_put_back_in_place_and_reported(gradebook):
    submitted = released(master())
    del submitted.cells[2]
    notebook, changes = restore(submitted, gradebook)
    assert [c["metadata"]["nbgrader"]["grade_id"] for c in notebook.cells] == ["setup", "add", "test_add_1", "test_add_2"]
    assert changes == [CellChange(ChangeKind.DELETED, "test_add_1", "nb")]


def test_a_test_cell_turned_into_markdown_is_graded_as_code_and_reported(gradebook):
    submitted = released(master())
    test = submitted.cells[3]
    submitted.cells[3] = new_markdown_cell(test.source, metadata=test.metadata)
    notebook, changes = restore(submitted, gradebook)
    assert notebook.cells[3].cell_type == "code"
    assert changes == [CellChange(ChangeKind.RETYPED, "test_add_2", "nb", was="code", now="markdown")]


def test_a_copied_answer_cell_leaves_one_graded_copy_and_is_reported():
    notebook = released(master())
    notebook.cells.insert(2, copy.deepcopy(notebook.cells[1]))
    resources = {"nbgrader": {"notebook": "nb"}}
    notebook, _ = DeduplicateCells().preprocess(notebook, resources)
    assert "nbgrader" not in notebook.cells[1].metadata and notebook.cells[2].metadata.nbgrader.grade_id == "add"
    assert outcomes.records(resources) == [CellChange(ChangeKind.COPIED, "add", "nb")]


class FakeKernelManager:
    interrupted = 0

    def interrupt_kernel(self):
        self.interrupted += 1


def test_a_cell_that_prints_too_much_is_cut_interrupted_and_reported():
    execute = GuardedExecute(max_output_bytes=100)
    execute.nb, execute.km = new_notebook(cells=[cell("code", "q1", "while True: print('x' * 60)")]), FakeKernelManager()
    execute.resources = {}  # what GuardedExecute.preprocess sets before running a notebook
    execute.reset_execution_trackers()  # what nbclient does before running a notebook, and before a cell:
    execute.clear_before_next_output = False
    execute._output_sizes, execute._cut_cells, execute._pending = {}, set(), set()
    outs = []

    async def print_three_times():
        for _ in range(3):
            execute.output(outs, {"msg_type": "stream", "header": {"msg_type": "stream"}, "parent_header": {"msg_id": "1"},
                                  "content": {"name": "stdout", "text": "x" * 60}}, None, 0)
        await asyncio.sleep(0)

    asyncio.run(print_three_times())
    assert len(outs) == 2 and outs[0].text.startswith("[grader] This cell printed more than 0.1 kB")
    assert execute.km.interrupted == 1
    [problem] = outcomes.records(execute.resources)
    assert problem.kind is ProblemKind.TOO_MUCH_OUTPUT and problem.cells == ("q1",)
    assert str(problem) == "too much output: cell(s) q1 printed more than 0.1 kB; the output was cut and the cell stopped"


class KernelGroup:
    """A kernel's control group as the sandbox reads it at cleanup (coursekit.cgroup.KernelGroup)."""

    def __init__(self, kills):
        self.kills = kills

    def oom_kills(self):
        return self.kills

    def peak_memory(self):
        return 2 * 1024**3


class SandboxedKernelManager:
    """A kernel manager whose sandbox ends at cleanup, the out-of-memory killer having ended `kills` processes."""

    def __init__(self, kills):
        self.provisioner, self.kills = SandboxProvisioner(memory_limit=2 * 1024**3), kills

    def is_alive(self):
        return False

    def cleanup_resources(self):
        self.provisioner._report_memory(KernelGroup(self.kills))


@pytest.mark.parametrize("kills", [2, 0])
def test_processes_the_out_of_memory_killer_ended_are_reported_once_the_kernel_is_cleaned_up(kills):
    execute = GuardedExecute()
    execute.km, execute.resources, execute._kernel_seconds = SandboxedKernelManager(kills), {}, 0.0
    execute._cleanup_kernel()
    problems = outcomes.records(execute.resources)
    if not kills:
        assert problems == []
        return
    [problem] = problems
    assert problem.kind is ProblemKind.OUT_OF_MEMORY and "(2 GiB" in problem.detail
    assert problem.detail.endswith("2 of them killed")


def test_only_the_cells_source_tags_keep_the_skip_tag(tmp_path):
    tagged = master()
    tagged.cells[0].metadata["tags"] = ["skip-when-grading"]  # a demo cell of the course
    (tmp_path / "source" / "a").mkdir(parents=True)
    nbformat.write(tagged, tmp_path / "source" / "a" / "nb.ipynb")
    submitted = copy.deepcopy(tagged)
    submitted.cells[2].metadata["tags"] = ["skip-when-grading"]  # a student hiding a test from the grader
    config = Config()
    config.CourseDirectory.root = str(tmp_path)
    config.Execute.skip_cells_with_tag = "skip-when-grading"
    notebook, _ = KeepCourseSkipTags(config=config).preprocess(submitted, {"nbgrader": {"assignment": "a", "notebook": "nb"}})
    assert notebook.cells[0].metadata.tags == ["skip-when-grading"]
    assert notebook.cells[2].metadata.tags == []


def test_feedback_hides_the_traceback_lines_of_hidden_tests():
    test = cell("code", "test_add_1", HIDDEN, grade=True, locked=True, points=2)
    test.execution_count = 3
    test.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[
        "Traceback (most recent call last):", "Cell In[3], line 3\n----> 3 assert add(2, 2) == 4", "AssertionError"])]
    notebook, _ = HideHiddenTestTracebacks().preprocess(new_notebook(cells=[test]), {})
    shown = "\n".join(notebook.cells[0].outputs[0].traceback)
    assert "add(2, 2)" not in shown and "hidden tests, which are not shown" in shown
