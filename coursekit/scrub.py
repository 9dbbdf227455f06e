"""Last line of defence for the hidden tests: no output of a graded notebook quotes them.

Other layers keep student code from reading the hidden tests (the sandbox, the kernel's own checks). If one of them
fails, the text would reach a person through an output: `print(In)` prints every executed cell's source as a list
repr (with \\n and \\' escapes), an audit hook prints each cell's source as bytes while IPython compiles it, an
error's traceback quotes a line. `ScrubHiddenTestText` collects the hidden-test lines of the notebook's test cells
(between the delimiters of nbgrader's ClearHiddenTests, read from the course's config: `cells.hidden_test_delimiters`)
and searches every output of every cell for them, as printed and unescaped (repr and bytes escapes, HTML entities,
ANSI colours). An output that quotes one is replaced by a short note of the same kind (a stderr stream stays stderr,
an error stays an error: the score nbgrader computes from the outputs is the same), and the cell is reported
(ProblemKind.HIDDEN_TESTS_SHOWN).

It runs twice, configured in nbgrader_config.py: at autograde right after GuardedExecute (the autograded notebook,
which formgrader shows and feedback is made from), and in generate_feedback before ClearHiddenTests (feedback made
from a notebook autograded before this existed). A failing hidden assert's traceback legitimately quotes its own line
in its own test cell: frames of test cells' code in a test cell's error are left to HideHiddenTestTracebacks
(feedback) and not counted as a leak.

What still gets through: text transformed beyond these escapes (encoded, reversed, split across lines, a line
shorter than `min_length`), and anything that is not an output (a file the kernel wrote, a network request: the
sandbox's business).
"""
import html
import re

from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from .cells import grade_id, hidden_test_delimiters, is_test
from .outcomes import Problem, ProblemKind, report

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt'\"\\])")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\"}


def _unescape_once(text: str) -> str:
    def one(match):
        code = match.group(1)
        return _SIMPLE[code] if code in _SIMPLE else chr(int(code[1:], 16))
    return _ESCAPE.sub(one, text)


def readings(text: str) -> list[str]:
    """The ways a person may read `text`: as printed, without colours and entities, and with repr/bytes/JSON escapes
    undone once and twice (a repr of a list of reprs)."""
    plain = html.unescape(ANSI.sub("", text))
    once = _unescape_once(plain)
    return list(dict.fromkeys([text, plain, once, _unescape_once(once)]))


def split_hidden(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """(the stripped lines between the hidden-test delimiters of one cell's source, the lines outside them)."""
    hidden, public, inside = [], [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            if line.strip():
                hidden.append(line.strip())
        else:
            public.append(line)
    return hidden, public


def hidden_lines(source: str, begin: str, end: str) -> list[str]:
    """The stripped lines between the hidden-test delimiters of one cell's source."""
    return split_hidden(source, begin, end)[0]


def secret_lines(nb, begin: str, end: str, min_length: int) -> set[str]:
    """The hidden-test lines of the notebook's test cells that could not appear by chance: at least `min_length`
    characters with a word character, and written nowhere else in the notebook (a visible test, an answer), not even
    inside a longer line."""
    hidden, public = set(), []
    for cell in nb.cells:
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        lines, outside = split_hidden(source, begin, end) if is_test(cell) else ([], source.splitlines())
        hidden |= set(lines)
        public += outside
    public_text = "\n".join(public)
    return {line for line in hidden if len(line) >= min_length and re.search(r"\w", line) and line not in public_text}


def _texts(output) -> list[str]:
    """Every piece of text in one output: stream text, an error's name, value and traceback, every data format."""
    kind = output.get("output_type")
    if kind == "stream":
        return [_joined(output.get("text", ""))]
    if kind == "error":
        return [output.get("ename", ""), output.get("evalue", ""), "\n".join(output.get("traceback", []))]
    texts = []
    for value in output.get("data", {}).values():
        texts.append(value if isinstance(value, str) else _joined(value) if isinstance(value, list) else str(value))
    return texts + [str(output.get("metadata", ""))]


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def quoted(text: str, secrets: set[str]) -> set[str]:
    return {line for reading in readings(text) for line in secrets if line in reading}


class ScrubHiddenTestText(NbGraderPreprocessor):
    """Replace every output that quotes a hidden-test line with a note, and report the cells (see the module)."""

    min_length = Integer(
        16, help="Shortest hidden-test line (stripped) searched for: shorter ones ('assert ok', 'response.json()') "
                 "can appear in honest output by chance.").tag(config=True)
    note = Unicode("[grader] This output quoted the hidden tests and was removed.\n").tag(config=True)

    def preprocess(self, nb, resources):
        begin, end = hidden_test_delimiters(self.config)
        secrets = secret_lines(nb, begin, end, self.min_length)
        if not secrets:
            return nb, resources
        # The frames of test cells' code, as tracebacks name them ("Cell In[7], line 3"): a failing hidden assert
        # quotes its line there, in its own cell's error (or a helper another test cell defined).
        test_frames = tuple(f"Cell In[{c.execution_count}]" for c in nb.cells
                            if c.cell_type == "code" and is_test(c) and c.get("execution_count"))
        cells, count = [], 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            own_frames = test_frames if is_test(cell) else ()
            outputs, leaked_here = [], set()
            for output in cell.get("outputs", []):
                leaked = quoted("\n".join(_texts(self._without_test_frames(output, own_frames))), secrets)
                leaked_here |= leaked
                outputs.append(self._note_like(output, secrets) if leaked else output)
            if leaked_here:
                count += len(leaked_here)
                cells.append(grade_id(cell) or f"#{index + 1}")
                cell.outputs = outputs
        if cells:
            notebook = resources.get("nbgrader", {}).get("notebook", "the notebook")
            report(Problem(ProblemKind.HIDDEN_TESTS_SHOWN,
                           f"printed {count} hidden-test line(s) of {notebook}; those outputs were replaced by a note",
                           cells=tuple(cells)), resources, self.log)
        return nb, resources

    @staticmethod
    def _without_test_frames(output, frames: tuple[str, ...]):
        """A test cell's error without the traceback frames of test cells' code (a failing hidden assert quotes its
        line there: not a leak; HideHiddenTestTracebacks hides it in feedback)."""
        if not frames or output.get("output_type") != "error":
            return output
        kept = [f for f in output.get("traceback", []) if not ANSI.sub("", f).lstrip().startswith(frames)]
        return {**output, "traceback": kept}

    def _note_like(self, output, secrets: set[str]) -> NotebookNode:
        """A note in place of `output`, of the same kind: a stderr stream or an error still fails its test cell."""
        kind = output.get("output_type")
        if kind == "stream":
            return NotebookNode(output_type="stream", name=output.get("name", "stdout"), text=self.note)
        if kind == "error":
            ename = output.get("ename", "")
            return NotebookNode(output_type="error", ename="Error" if quoted(ename, secrets) else ename,
                                evalue=self.note.strip(), traceback=[self.note.strip()])
        replaced = NotebookNode(output_type=kind, data={"text/plain": self.note.strip()}, metadata={})
        if kind == "execute_result":
            replaced["execution_count"] = output.get("execution_count")
        return replaced
