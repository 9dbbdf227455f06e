"""The static review's table: what it flags in a student's code and why, one rule per construct (`RULES`).

Separate from the reader that applies it (coursekit.review_reader) and the preprocessor that reports it
(coursekit.review): this is the policy an instructor reads and changes (a rule, a safe dunder, an allowed module),
with a reason for each, and nothing else.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str  # what the report says was found
    kind: str  # "name" (an identifier used), "import" (a module imported), "os" (a function of os), "attribute",
    #            "dunder" (a __name__ outside SAFE_DUNDERS, as name, attribute or inside a string), "string",
    #            "dynamic-attribute" (getattr/setattr/delattr with a computed name), "magic" (%, !, ?)
    pattern: str  # a regular expression the whole name (the top-level module, the string) must match
    why: str


# Dunder names honest code in this course uses: naming things, SQLAlchemy's declarative settings, typing's metadata,
# the context-manager and construction protocols. Anything else (__class__, __dict__, __globals__, __builtins__,
# __subclasses__, __code__, __traceback__...) walks from an ordinary object to the interpreter's internals.
SAFE_DUNDERS = frozenset({
    "__init__", "__post_init__", "__new__", "__name__", "__qualname__", "__doc__", "__module__", "__all__",
    "__tablename__", "__table__", "__table_args__", "__mapper_args__", "__abstract__",
    "__metadata__", "__origin__", "__args__", "__annotations__", "__members__",
    "__enter__", "__exit__", "__aenter__", "__aexit__", "__iter__", "__aiter__", "__next__", "__anext__",
    "__len__", "__contains__", "__getitem__", "__repr__", "__str__", "__eq__", "__hash__", "__lt__",
    "__call__", "__future__", "__slots__",
})

RULES: tuple[Rule, ...] = (
    Rule("get_ipython", "name", r"get_ipython",
         "IPython's shell: its exception handlers, input and AST transformers, events and kernel decide what a "
         "test cell shows; every score attack of the hostile tests starts here"),
    Rule("input/output history", "name", r"In|Out|_ih|_oh|_dh|_i|_ii|_iii|_i\d+",
         "IPython keeps the source of every executed cell here, the test cells' hidden tests included"),
    Rule("dynamic code", "name", r"exec|eval|compile|__import__|breakpoint",
         "runs code this review cannot read (or stops in a debugger)"),
    Rule("namespace access", "name", r"globals|vars|locals",
         "the notebook's namespace as a dictionary: rebinds what the tests use, reaches __builtins__"),
    Rule("interpreter internals", "import",
         r"sys|builtins|inspect|gc|ctypes|importlib|linecache|traceback|marshal|dis|code|codeop|signal|"
         r"faulthandler|tracemalloc|pdb|bdb|trace|site|runpy|atexit",
         "hooks (sys.settrace, excepthook, audit hooks), frames, builtins, compiled code or the kernel's objects "
         "(gc.get_objects): what it takes to rewire grading or read the tests' source"),
    Rule("threads", "import", r"threading|_thread",
         "a thread keeps running while the test cells run, after the grader's checks (asyncio.to_thread is fine)"),
    Rule("processes", "import", r"subprocess|multiprocessing|pty|concurrent\.futures\.process",
         "starts programs or processes: work outside the kernel the grader watches"),
    Rule("processes (asyncio)", "attribute", r"create_subprocess_exec|create_subprocess_shell|subprocess_exec|"
         r"subprocess_shell",
         "asyncio's way of starting programs: work outside the kernel the grader watches"),
    Rule("kernel internals", "import",
         r"IPython|ipykernel|jupyter_client|jupyter_core|zmq|comm|debugpy|traitlets|nbgrader|nbclient|coursekit",
         "the kernel's, the grader's or the guard's own objects"),
    Rule("private module", "import", r"_(?!_future__)\w*",
         "an underscore module is a C internal behind a public one (_posixsubprocess forks without subprocess)"),
    Rule("os process call", "os",
         r"system|popen|fork|forkpty|exec\w*|spawn\w*|posix_spawnp?|kill|killpg|_exit|abort|register_at_fork|"
         r"plock|setuid|setgid|setsid|setpgid|dup2?|openpty|pidfd_open",
         "starts, replaces, signals or ends processes (the kernel itself included)"),
    Rule("frame or code object", "attribute",
         r"f_back|f_globals|f_locals|f_code|f_builtins|f_trace\w*|f_lasti|f_lineno|tb_frame|tb_next|tb_lineno|"
         r"gi_frame|gi_code|cr_frame|cr_code|cr_await|ag_frame|ag_code|co_\w+|_getframe|_current_frames|"
         r"_current_exceptions",
         "frames and code objects: the caller's variables, the tests' source and errors, the guard's objects"),
    Rule("interpreter hook", "attribute",
         r"settrace|setprofile|addaudithook|excepthook|displayhook|unraisablehook|breakpointhook|"
         r"set_custom_exc|showtraceback|_showtraceback|showsyntaxerror|input_transformers_\w+|ast_transformers|"
         r"user_ns|user_global_ns|user_ns_hidden|history_manager|run_line_magic|run_cell_magic|run_cell|"
         r"run_ast_nodes|run_code|system_piped|system_raw|getoutput|iopub_socket|display_pub|execution_count",
         "what decides how the kernel runs a cell and reports its errors"),
    Rule("dunder", "dunder", r"__\w+__",
         "a walk from an ordinary object to the interpreter's internals (().__class__.__base__.__subclasses__(), "
         "f.__globals__, __builtins__), as a name, an attribute or a string given to getattr"),
    Rule("computed attribute name", "dynamic-attribute", r"getattr|setattr|delattr",
         "an attribute whose name is computed cannot be read here: it can be any of the above (setattr(obj, name, "
         "value) with a variable's name, the partial-update idiom, is not flagged)"),
    Rule("/proc or /dev/mem path", "string", r".*(/proc/|/dev/k?mem).*",
         "the kernel's own memory and file descriptors (/proc/self/mem rewrites the running interpreter)"),
    Rule("IPython magic or shell escape", "magic", r"",
         "IPython turns %magic, !command and `name?` into get_ipython() calls: a shell, the history, the debugger"),
)


# Modules of a flagged package that honest notebooks use, and why they are harmless.
ALLOWED_MODULES = {
    "IPython.display": "shows a table, an image or HTML: output only (what HTML may do is the sanitizer's business)",
}
