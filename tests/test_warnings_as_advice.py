"""A deprecation warning printed while a correct answer is tested costs nothing; a wrong answer still fails.

The rule (coursekit.advice) runs in the kernels nbgrader starts. It is checked here in a plain interpreter and
through nbgrader's own Validator with the students' nbgrader_config.py; tests/test_grading.py checks it at autograde
with a real answer (`Result.tuples()`)."""
import subprocess
import sys

import pytest
from nbformat.v4 import new_code_cell, new_notebook
from traitlets.config import Config

from coursekit.advice import ADVICE_NOTE, kernel_advice_line
from coursekit.student_copy import student_nbgrader_config
from coursekit.testing import COURSE_ROOT


def run_with_advice(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", kernel_advice_line() + code], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("category", ["DeprecationWarning", "FutureWarning",
                                      "sqlalchemy.exc.SADeprecationWarning", "sqlalchemy.exc.MovedIn20Warning"])
def test_a_deprecation_warning_goes_to_stdout_as_advice(category):
    module = category.rpartition(".")[0]
    code = (f"import warnings{', ' + module if module else ''}\n"
            f"warnings.warn('Result.tuples() is deprecated', {category}, stacklevel=1)\n")
    result = run_with_advice(code)
    assert result.stderr == "", result.stderr
    assert result.stdout.startswith(ADVICE_NOTE) and "Result.tuples() is deprecated" in result.stdout, result.stdout


@pytest.mark.parametrize("category", ["RuntimeWarning", "UserWarning", "sqlalchemy.exc.SAWarning"])
def test_any_other_warning_stays_on_stderr(category):
    """'coroutine ... was never awaited' (RuntimeWarning) and SQLAlchemy's SAWarning point at real bugs."""
    module = category.rpartition(".")[0]
    result = run_with_advice(f"import warnings{', ' + module if module else ''}\n"
                             f"warnings.warn('something is wrong', {category})\n")
    assert "something is wrong" in result.stderr and result.stdout == ""


def test_the_grader_and_the_students_validate_share_the_setting():
    config = Config()
    exec(compile((COURSE_ROOT / "nbgrader_config.py").read_text(), "nbgrader_config.py", "exec"),
         {"get_config": lambda: config, "__file__": str(COURSE_ROOT / "nbgrader_config.py")})
    assert "--IPKernelApp.exec_lines=" + kernel_advice_line() in config.Execute.extra_arguments
    student = Config()
    exec(compile(student_nbgrader_config(COURSE_ROOT), "nbgrader_config.py", "exec"), {"get_config": lambda: student})
    assert student.Execute.extra_arguments == config.Execute.extra_arguments


@pytest.mark.slow
def test_the_students_validate_passes_a_warning_and_fails_a_wrong_answer(tmp_path):
    """nbgrader's Validator, configured by the students' nbgrader_config.py, runs a notebook in a real kernel."""
    from nbformat import write
    from nbgrader.validator import Validator

    student = Config()
    exec(compile(student_nbgrader_config(COURSE_ROOT), "nbgrader_config.py", "exec"), {"get_config": lambda: student})
    warns = "import warnings\nwarnings.warn('Result.tuples() is deprecated', DeprecationWarning)\n"
    cells = [new_code_cell(warns + "assert 1 + 1 == 2"), new_code_cell(warns + "assert 1 + 1 == 3, 'wrong'"),
             new_code_cell("import warnings\nwarnings.warn('coroutine was never awaited', RuntimeWarning)")]
    for number, cell in enumerate(cells, start=1):
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": f"test_{number}", "points": 1, "solution": False,
                                     "locked": True, "schema_version": 3}
    path = tmp_path / "warned.ipynb"
    write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                             "language": "python"}}), str(path))
    failed = [f["source"] for f in Validator(config=student).validate(str(path)).get("failed", [])]
    assert failed == [cells[1].source, cells[2].source], f"only the wrong assert and the RuntimeWarning fail: {failed}"
