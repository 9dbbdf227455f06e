"""The grader's guard INSIDE a grading kernel: an audit hook installed before any student code runs, and the state
of IPython it puts back before each test cell.

nbgrader scores a test cell by its outputs: no error means full marks. A student's answer cell can rewire the
interpreter so that errors vanish: a custom exception handler, an input or AST transformer that wraps later cells
in try/except, an event callback, a trace function, rebound builtins, a patched IPython method.

This module is the grader's (host) side: which modules run in the kernel and the request that starts them there
(`install_request`, sent by `coursekit.integrity.IntegrityChecks` before the notebook's first cell). They are sent
as source (coursekit is not importable inside the sandbox, and must not be: the notebook's folder can be on a
kernel's import path), each compiled under GUARD_FILE, the one file name the hook counts as its own code and refuses
to anyone else:

- `guard_state`: the state of IPython noted at start and put back before each test cell (`Guard`);
- `guard_output`: the output cap, a cell stopped in its own print() (`cap_output`);
- `guard_hook`: the audit hook (`install`), with the vetoes, the signed reports, the marker and the blanking below.

`guard_hook.install` adds a PEP 578 audit hook (one that nothing can remove). Everything the grader relies on lives
in that hook's closure, which no object of the interpreter references (`gc` and frames are vetoed):

- it vetoes, and records for the report, what reading or rewiring the grader needs: new audit hooks, `ctypes`,
  `gc`'s object walks, other threads' frames, trace and profile functions, new processes, `/proc/*/mem`, frames
  (`sys._getframe`, `tb_frame`, `gi_frame`, `cr_frame`, `ag_frame`) and `__code__` swaps asked for by student code,
  and code compiled under a file name of the Python environment with other source;
- the probes call `sys.audit("coursekit.check", ...)`: the hook puts back what `Guard.restore` finds changed and
  answers with a report signed (HMAC) with a key that only the hook and the grader hold, which the probe raises as
  its error. A fake check, a replaced `sys.audit` or a hidden error cannot sign: the grader then trusts nothing after;
- a test cell ends with `sys.audit("coursekit.reach", marker)`: counted only when called from the test cell's own
  code, run by IPython (its frame is checked), so a student's code that read the marker cannot forge it;
- while a test cell runs, its hidden tests are blanked in every copy of its source the kernel keeps (the request,
  linecache, IPython's execution info), and its linecache entry is removed afterwards.

This is evidence, not proof: see the README's "Security" section for what stays possible.
"""
from pathlib import Path

from . import guard_hook, guard_output, guard_state
from .guard_hook import CHECK_EVENT, GUARD_FILE, REACH_EVENT  # noqa: F401 (the grader's probes use them)
from .guard_output import OUTPUT_LIMIT_ERROR  # noqa: F401 (the grader tells the cap's error by its name)

# What runs in the kernel, in this order, each in a namespace of its own: plain Python that imports only modules the
# kernel has already loaded.
KERNEL_SOURCES = tuple((module.__name__.rpartition(".")[2], Path(module.__file__).read_text(encoding="utf-8"))
                       for module in (guard_state, guard_output, guard_hook))


def install_request(key_hex: str, settings: dict) -> str:
    """The kernel's first request: compile each module of KERNEL_SOURCES under GUARD_FILE and run it, then
    `guard_hook.install(get_ipython(), key_hex, settings, Guard, cap_output)` (see its docstring for `settings`).

    One expression, which leaves no name in the notebook's namespace; `install` removes IPython's and the kernel's
    copies of this request, which holds the key.
    """
    return (f"(lambda m: ([exec(compile(s, {GUARD_FILE!r}, 'exec'), m.setdefault(n, {{'__name__': 'coursekit_guard'}}))"
            f" for n, s in {KERNEL_SOURCES!r}], m['guard_hook']['install'](get_ipython(), {key_hex!r}, {settings!r},"
            f" m['guard_state']['Guard'], m['guard_output']['cap_output'])))({{}})\n")
