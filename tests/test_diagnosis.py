"""Why a submission needs attention, decided from what grading holds in memory: no kernel, milliseconds each."""
import sqlite3

import nbformat
import pytest
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_notebook, new_output
from sqlalchemy.exc import OperationalError

from coursekit import diagnosis
from coursekit.outcomes import CellChange, ChangeKind, Problem, ProblemKind


def test_a_missing_or_malformed_notebook_is_named_before_grading(tmp_path):
    (tmp_path / "source" / "a").mkdir(parents=True)
    nbformat.write(new_notebook(), tmp_path / "source" / "a" / "a.ipynb")
    (tmp_path / "submitted" / "ann" / "a").mkdir(parents=True)
    assert diagnosis.check_submission(tmp_path, "a", "ann") == Problem(ProblemKind.MISSING, "a.ipynb was not submitted")
    (tmp_path / "submitted" / "ann" / "a" / "a.ipynb").write_text('{"cells": [')
    assert diagnosis.check_submission(tmp_path, "a", "ann").kind is ProblemKind.NOT_A_NOTEBOOK
    nbformat.write(new_notebook(), tmp_path / "submitted" / "ann" / "a" / "a.ipynb")
    assert diagnosis.check_submission(tmp_path, "a", "ann") is None


def test_the_exception_nbgrader_stopped_on_gives_the_reason():
    assert diagnosis.from_exception(DeadKernelError("Kernel died")).kind is ProblemKind.KERNEL_DIED
    assert diagnosis.from_exception(CellTimeoutError("cell timed out")).kind is ProblemKind.TIMED_OUT
    try:  # nbgrader wraps what it catches: the reason is found in the chain
        try:
            raise DeadKernelError("Kernel died")
        except DeadKernelError as error:
            raise RuntimeError("There was an error processing assignment") from error
    except RuntimeError as wrapped:
        assert diagnosis.from_exception(wrapped).kind is ProblemKind.KERNEL_DIED
    assert str(diagnosis.from_exception(ValueError("no such cell"))) == "grading failed: ValueError: no such cell"


def test_a_gradebook_locked_by_another_writer_is_reported_as_busy(tmp_path):
    holder = sqlite3.connect(tmp_path / "gradebook.db", isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin exclusive")
    waiter = sqlite3.connect(tmp_path / "gradebook.db", timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:
        waiter.execute("insert into t values (1)")
    wrapped = OperationalError("insert", {}, locked.value)  # as SQLAlchemy raises it from nbgrader's gradebook
    assert diagnosis.from_exception(wrapped).kind is ProblemKind.GRADEBOOK_BUSY
    holder.close(), waiter.close()


def notebook_with_errors(*errors):
    cells = [new_code_cell("x", metadata={"nbgrader": {"grade_id": name}},
                           outputs=[new_output("error", ename=ename, evalue="", traceback=[])])
             for name, ename in errors]
    return new_notebook(cells=[new_code_cell("ok"), *cells])


def test_interrupted_cells_and_memory_errors_are_read_from_the_graded_notebooks():
    problem = diagnosis.from_graded_cells([notebook_with_errors(("q1", "CellTimeoutError"), ("q2", "KeyboardInterrupt"))])
    assert str(problem) == "timed out: cell(s) q1, q2 ran too long and were interrupted"
    problem = diagnosis.from_graded_cells([notebook_with_errors(("q3", "MemoryError"), ("q4", "AssertionError"))])
    assert problem.kind is ProblemKind.OUT_OF_MEMORY and problem.cells == ("q3",)
    assert diagnosis.from_graded_cells([notebook_with_errors(("q4", "AssertionError"))]) is None


def test_the_first_problem_in_order_of_precedence_is_shown_with_same_kind_problems_merged():
    flood = [Problem(ProblemKind.TOO_MUCH_OUTPUT, "printed more than 1 MB; the output was cut and the cell stopped", (c,))
             for c in ("q1", "q2", "q1")]
    chosen = diagnosis.choose([], None, flood, Problem(ProblemKind.TIMED_OUT, "ran too long", ("q3",)))
    assert str(chosen) == "too much output: cell(s) q1, q2 printed more than 1 MB; the output was cut and the cell stopped"
    assert diagnosis.choose(None, []) is None


def test_tampering_outranks_out_of_memory_and_a_dead_kernel_which_outranks_a_flood_which_outranks_interrupted_cells():
    tampered = Problem(ProblemKind.TAMPERED, "the gradebook was written to from an answer cell")
    flood = Problem(ProblemKind.TOO_MUCH_OUTPUT, "printed more than 1 MB; the output was cut and the cell stopped", ("q1",))
    interrupted = [notebook_with_errors(("q2", "CellTimeoutError"))]
    assert diagnosis.classify([flood, tampered], DeadKernelError("Kernel died"), interrupted) == tampered
    assert diagnosis.classify([flood], DeadKernelError("Kernel died"), interrupted).kind is ProblemKind.KERNEL_DIED
    # the sandbox's control group saw the out-of-memory killer at work: that is why the kernel died
    out_of_memory = Problem(ProblemKind.OUT_OF_MEMORY, "the kernel's processes together reached its memory limit")
    assert diagnosis.classify([flood, out_of_memory], DeadKernelError("Kernel died"), interrupted) == out_of_memory
    assert diagnosis.classify([out_of_memory, tampered], DeadKernelError("Kernel died"), interrupted) == tampered
    assert diagnosis.classify([flood], None, interrupted) == flood
    assert diagnosis.classify([], None, interrupted).cells == ("q2",)
    assert diagnosis.classify([], None, [new_notebook()]) is None


def test_changes_are_described_in_the_words_of_the_report():
    changes = [CellChange(ChangeKind.COPIED, "q1", "nb"), CellChange(ChangeKind.COPIED, "q1", "nb"),
               CellChange(ChangeKind.RETYPED, "test_q1", "nb", was="code", now="markdown"),
               CellChange(ChangeKind.EDITED, "test_q2", "nb"), CellChange(ChangeKind.EDITED, "test_q3", "nb"),
               CellChange(ChangeKind.DELETED, "test_q4", "nb")]
    assert diagnosis.describe_changes(changes) == [
        "cell q1 appears 3 times (copied); only the last copy was graded",
        "cell test_q1 was turned from code into markdown; it was graded as code",
        "locked cell(s) edited, put back before grading: test_q2, test_q3",
        "cell(s) deleted, put back before grading: test_q4",
    ]
