"""Static review of what a student wrote: interpreter internals, found by reading the code, never by running it.

A check inside the student's kernel (coursekit.integrity) can be beaten by code that tells the grader's probes from
the tests. This layer does not depend on the interpreter telling the truth: it parses (`ast`) every code cell the
student wrote or added (answer cells, unlocked cells; not the locked and test cells the gradebook puts back) and
every Python file handed in beside the notebook, and flags the constructs that tampering with grading or reading
the hidden tests needs: IPython's shell and history, `sys`, frames, dynamic code, processes... (`RULES`, one table,
a reason per rule). Honest answers to this course need none of them (tests/test_static_review.py reads every answer
in tests/right_answers/ and solutions/ and finds nothing).

A flagged submission is *needs review* (ProblemKind.NEEDS_REVIEW), with cell and line: the score is unchanged, a
person reads the lines. `ReviewStudentCode` is the nbgrader preprocessor (configured in nbgrader_config.py, so it
runs in plain `nbgrader autograde` and in `coursekit grade`); `review_source` and `review_notebook` are plain
functions a test calls without a kernel.

What a static read cannot see: code assembled at run time from innocent parts (it needs one of the flagged
builtins or attributes to run, which is flagged), and aliases the rules do not follow (`o = os; o.fork()`).
"""
import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from .cells import grade_id, hidden_test_delimiters, is_answer
from .outcomes import Problem, ProblemKind, report


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


@dataclass(frozen=True)
class Finding:
    where: str  # the cell's grade id or #n, or a file's name
    line: int
    rule: Rule
    code: str  # the line as written (trimmed)

    def __str__(self) -> str:
        return f"{self.where} line {self.line}: {self.rule.name} ({self.code})"


_COMPILED = [(rule, re.compile(rule.pattern, re.S)) for rule in RULES]


def _rule(kind: str) -> Rule:
    return next(rule for rule in RULES if rule.kind == kind)


def _match(kind: str, text: str) -> Rule | None:
    for rule, pattern in _COMPILED:
        if rule.kind == kind and pattern.fullmatch(text):
            return rule
    return None


_DUNDER = re.compile(r"__[A-Za-z]\w*?__")


def _own_names(tree) -> set[str]:
    """Names the code binds by importing them from a module other than builtins, or by def/class."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module not in ("builtins", "__builtin__"):
            names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _os_aliases(tree) -> set[str]:
    """Names `import os as o` binds to the os module."""
    return {alias.asname for node in ast.walk(tree) if isinstance(node, ast.Import)
            for alias in node.names if alias.name in ("os", "posix", "nt") and alias.asname}


def _loop_fields(tree) -> set[str]:
    """Names a `for` loop (or comprehension) binds from an iterable that is neither a literal nor dir()/vars():
    the fields of a payload, not names the code spelled out."""
    def from_data(iterable) -> bool:
        calls = [n.func for n in ast.walk(iterable) if isinstance(n, ast.Call)]
        spelled = any(isinstance(n, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(n, "value", ""), str)
                      for n in ast.walk(iterable))
        return not spelled and not any(isinstance(f, ast.Name) and f.id in ("dir", "vars", "getattr") for f in calls)

    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)) and from_data(node.iter):
            names.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return names


def _unsafe_dunder(text: str) -> bool:
    return any(d not in SAFE_DUNDERS for d in _DUNDER.findall(text))


class _Reader(ast.NodeVisitor):
    """Collects (line, rule) for every construct of the table in one module's tree."""

    def __init__(self, tree=None):
        self.found: list[tuple[int, Rule]] = []
        self.own = _own_names(tree) if tree is not None else set()
        self.os_names = {"os", "posix", "nt"} | (_os_aliases(tree) if tree is not None else set())
        self.loop_fields = _loop_fields(tree) if tree is not None else set()

    def _flag(self, node, rule: Rule | None):
        if rule is not None:
            self.found.append((getattr(node, "lineno", 1), rule))

    def _dunder(self, node, text: str):
        if _unsafe_dunder(text):
            self._flag(node, _rule("dunder"))

    def visit_Name(self, node):
        # A variable named `vars` is odd, not dangerous; using the builtin is. A name the code imports from a module
        # or defines itself (`from re import compile`, `def compile`) is not the builtin; deleting it makes it so.
        if isinstance(node.ctx, ast.Del) or (isinstance(node.ctx, ast.Load) and node.id not in self.own):
            self._flag(node, _match("name", node.id))
        self._dunder(node, node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        self._flag(node, _match("attribute", node.attr))
        if isinstance(node.value, ast.Name) and node.value.id in self.os_names:
            self._flag(node, _match("os", node.attr))
        if node.attr.startswith("__"):
            self._dunder(node, node.attr)
        self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self._module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level == 0:
            self._module(node, module)
        for alias in node.names:  # `from re import compile` is not the builtin: only os's names are checked
            if module in ("os", "posix", "nt"):
                self._flag(node, _match("os", alias.name))
            self._dunder(node, alias.name)
        self.generic_visit(node)

    def _module(self, node, module: str):
        if module in ALLOWED_MODULES:
            return
        top = module.split(".")[0]
        self._flag(node, _match("import", module) or _match("import", top))

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and _match("dynamic-attribute", node.func.id):
            name = node.args[1] if len(node.args) > 1 else None
            literal = isinstance(name, ast.Constant) and isinstance(name.value, str)
            # `for field in changes.model_fields_set: setattr(ticket, field, getattr(changes, field))`: the
            # partial-update idiom (FastAPI's full-stack template does it): an object the code holds, a field name a
            # loop takes from data. A name built from strings or taken from dir() is still flagged.
            field_loop = (isinstance(node.args[0], ast.Name) and isinstance(name, ast.Name)
                          and name.id in self.loop_fields)
            if name is None or not (literal or field_loop):
                self._flag(node, _match("dynamic-attribute", node.func.id))
        self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            self._dunder(node, text)
            self._flag(node, _match("string", text))
        self.generic_visit(node)


MAGIC_LINE = re.compile(r"^\s*(%|!)|^\s*\w[\w.]*\s*=\s*(%|!)|\?\s*$")


def review_source(source: str, where: str = "", ipython: bool = True) -> list[Finding]:
    """What the table flags in one cell's (or file's) source; [] when it does not parse.

    ipython: the source is a notebook cell, where IPython's syntax (%magic, !command, name?) is valid.
    """
    lines = source.splitlines()
    findings: list[tuple[int, Rule]] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        if not ipython:
            return []
        from IPython.core.inputtransformer2 import TransformerManager

        try:
            tree = ast.parse(TransformerManager().transform_cell(source))
        except (SyntaxError, ValueError, IndexError):
            return []  # not Python, not IPython: a syntax error is the tests' business, not a reason to flag
        magic = _rule("magic")
        magic_lines = [n for n, line in enumerate(lines, 1) if MAGIC_LINE.search(line)] or [1]
        findings += [(n, magic) for n in magic_lines]
        # what IPython made of them is get_ipython().run_line_magic(...): report those lines as magics only
        reader = _Reader(tree)
        reader.visit(tree)
        findings += [(n, r) for n, r in reader.found if n not in magic_lines]
    else:
        reader = _Reader(tree)
        reader.visit(tree)
        findings += reader.found
    unique = dict.fromkeys((n, r) for n, r in findings)
    return [Finding(where, n, r, (lines[n - 1].strip() if 0 < n <= len(lines) else "")[:120])
            for n, r in sorted(unique, key=lambda item: item[0])]


def is_students(cell, course_sources: set[str] = frozenset()) -> bool:
    """A code cell the student wrote or added: an answer cell, or any cell that is not locked (a cell the student
    added, or a copy of a course cell that grading turned into a plain cell), unless it is a course cell's source
    unchanged."""
    if cell.get("cell_type") != "code":
        return False
    if is_answer(cell):
        return True
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return not meta.get("locked") and not meta.get("grade") and _source(cell).strip() not in course_sources


def _source(cell) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)  # a notebook file may hold a list of lines


def review_notebook(nb, course_sources: set[str] = frozenset()) -> list[Finding]:
    """Findings in every code cell the student wrote or added, in notebook order."""
    findings = []
    for index, cell in enumerate(nb.cells):
        if is_students(cell, course_sources):
            findings += review_source(_source(cell), grade_id(cell) or f"#{index + 1}")
    return findings


def review_files(folder: Path) -> list[Finding]:
    """Findings in the Python files of a submission folder (symbolic links are not followed, nor read)."""
    findings = []
    folder = Path(folder)
    for root, dirs, files in os.walk(folder):  # os.walk does not descend into linked folders
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink() or path.suffix not in (".py", ".pyw", ".pth"):
                continue
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            findings += review_source(source, path.relative_to(folder).as_posix(), ipython=False)
    return findings


def as_problem(findings: list[Finding], limit: int = 12) -> Problem | None:
    """The findings as one *needs review* problem, naming cells (or files) and lines."""
    if not findings:
        return None
    shown = "; ".join(str(f) for f in findings[:limit])
    more = f"; and {len(findings) - limit} more" if len(findings) > limit else ""
    return Problem(ProblemKind.NEEDS_REVIEW, f"interpreter internals in what the student wrote (the score is "
                   f"unchanged; read these lines): {shown}{more}",
                   cells=tuple(dict.fromkeys(f.where for f in findings)))


def _strip_blocks(source: str, begin: str, end: str) -> str:
    """A master cell's source as students receive it: the lines between the delimiters removed."""
    kept, inside = [], False
    for line in source.splitlines(keepends=True):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif not inside:
            kept.append(line)
    return "".join(kept)


class ReviewStudentCode(NbGraderPreprocessor):
    """At autograde, after the gradebook has put its cells back: report the interpreter internals in the cells the
    student wrote or added, and in the Python files of the submission, as *needs review* (coursekit.outcomes). The
    notebook and its score are unchanged."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        assignment, notebook, student = info.get("assignment"), info.get("notebook"), info.get("student")
        findings = review_notebook(nb, self._course_sources(assignment, notebook))
        folder = self._submitted_folder(assignment, student)
        if folder is not None and self._first_notebook(folder) == notebook:  # once per submission
            findings += review_files(folder)
        problem = as_problem(findings)
        if problem is not None:
            report(problem, resources, self.log)
        return nb, resources

    def _submitted_folder(self, assignment, student) -> Path | None:
        if not assignment or not student:
            return None
        coursedir = CourseDirectory(config=self.config)
        folder = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        return folder if folder.is_dir() else None

    @staticmethod
    def _first_notebook(folder: Path) -> str | None:
        names = sorted(p.stem for p in folder.glob("*.ipynb"))
        return names[0] if names else None

    def _course_sources(self, assignment, notebook) -> set[str]:
        """The sources of the master notebook's locked cells, as released (a copy of one is not the student's)."""
        if not assignment or not notebook:
            return set()
        coursedir = CourseDirectory(config=self.config)
        path = Path(coursedir.format_path(coursedir.source_directory, ".", assignment)) / f"{notebook}.ipynb"
        try:
            master = nbformat.read(str(path), as_version=4)
        except (OSError, ValueError):
            return set()
        begin, end = hidden_test_delimiters(self.config)
        sources = set()
        for cell in master.cells:
            if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
                sources |= {cell.source.strip(), _strip_blocks(cell.source, begin, end).strip()}
        return sources
