"""Deprecation warnings printed while a cell runs are advice for the student, not a failed test.

nbgrader scores a test cell 0 when anything reaches stderr (`nbgrader.utils.determine_grade`), and its Validate
button reports the cell as failed. A correct answer written with a documented idiom that the stack has since
deprecated (SQLAlchemy 2.1 prints `SADeprecationWarning` for `Result.tuples()`) then scores 0 although every assert
passed. Grading decides on behaviour: in the kernels nbgrader starts (autograde and Validate), a warning whose
category is a deprecation (`DeprecationWarning`, `PendingDeprecationWarning`, SQLAlchemy's `SADeprecationWarning`,
`FutureWarning`...) is written to stdout under a note that says it is advice and costs nothing. Every other warning
still goes to stderr and still scores 0 (a `RuntimeWarning` such as "coroutine ... was never awaited", an
`SAWarning`), and a failing assert is an error output, which this never touches.

Why in the kernel, through `IPKernelApp.exec_lines` in `c.Execute.extra_arguments` (nbgrader_config.py), rather than
an nbgrader preprocessor that rewrites outputs after the cells ran: one setting covers autograde AND the students'
Validate button (coursekit.student_copy copies the grader's `Execute.extra_arguments` into the students' config),
while nbgrader's Validator takes no extra preprocessors (its `preprocessors` trait is not configurable) and nbgrader's
Execute keeps nbclient's `on_cell_executed` hook for itself (nbgrader 0.9.6). A student's code can replace the hook
in its own kernel, but that only brings back nbgrader's stricter scoring: it cannot earn a point.
Removable when nbgrader scores warnings differently from errors (no upstream issue found as of nbgrader 0.9.6).
"""

# Full match, against the name of the warning's category or of any class it derives from.
ADVICE_CATEGORIES = r"\w*DeprecationWarning|FutureWarning"
ADVICE_NOTE = ("[grader] A library printed a deprecation warning while this cell ran. It is advice about your "
               "code, not a failed test, and costs no points:\n")


def kernel_advice_line() -> str:
    """Code for a kernel's `IPKernelApp.exec_lines`: deprecation warnings go to stdout, under ADVICE_NOTE."""
    return f"""import re as _re, sys as _sys, warnings as _warnings
def _advice_not_failure(message, category, filename, lineno, file=None, line=None, _show=_warnings.showwarning):
    if file is None and any(_re.fullmatch({ADVICE_CATEGORIES!r}, k.__name__) for k in category.__mro__):
        _sys.stdout.write({ADVICE_NOTE!r} + _warnings.formatwarning(message, category, filename, lineno, line))
    else:
        _show(message, category, filename, lineno, file, line)
_warnings.showwarning = _advice_not_failure
"""


def kernel_argument() -> str:
    """The kernel command-line argument that installs `kernel_advice_line` (for `c.Execute.extra_arguments`)."""
    return "--IPKernelApp.exec_lines=" + kernel_advice_line()
