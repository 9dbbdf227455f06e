"""The static review's reader: parses one cell's or file's source (`ast`, IPython's syntax included) and reports
where it uses a construct of the table (coursekit.review_rules), as `Finding`s with line and code.

Separate from the table (what is flagged) and from the preprocessor (which cells and files are the student's, and
how it is reported): this is how a source is read, and what the rules cannot follow is decided here (names the code
defines itself, `import os as o`, the fields a loop takes from data). It never runs the code.
"""
import ast
import re
from dataclasses import dataclass

from .review_rules import ALLOWED_MODULES, RULES, SAFE_DUNDERS, Rule


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
