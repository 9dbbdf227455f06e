"""The static review of what a student wrote (coursekit.review), without a kernel: every right answer and every
solution passes unflagged, every attack of the hostile tests is flagged with its cell and line, and the flag reaches
`coursekit grade`'s summary as *needs review* without touching the score."""
import ast
import copy
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from coursekit import assignments, diagnosis, outcomes, review, review_reader, review_rules
from coursekit import testing as subs
from coursekit.outcomes import Problem, ProblemKind, SubmissionResult
from coursekit.report import format_summary

ASSIGNMENTS = assignments(subs.COURSE_ROOT)


def hostile_attacks() -> dict[str, str]:
    """The attacks of the hostile class, SCORE_ATTACKS and HARM_ATTACK, as tests/test_hostile_submissions.py writes
    them (read from the file, not imported: a test module imports no other)."""
    tree = ast.parse(Path(__file__).with_name("test_hostile_submissions.py").read_text())
    attacks = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "SCORE_ATTACKS":
                attacks.update(ast.literal_eval(node.value))
            elif node.targets[0].id == "HARM_ATTACK":
                attacks["harms-the-class"] = ast.literal_eval(node.value)
    return attacks


ATTACKS = hostile_attacks()


def submission_with_attack(attack: str) -> dict:
    """As the hostile class hands it in: the blank notebook with the attack in its first answer cell."""
    blank = subs.blank_submission("01-async-database")
    first_answer = next(iter(subs.autograded_exercises(blank)))
    return subs.with_answers(blank, {first_answer: textwrap.dedent(attack).strip() + "\n"})


def flagged(source: str) -> list[str]:
    return [f.rule.name for f in review_reader.review_source(textwrap.dedent(source).strip() + "\n", "q1")]


# ---------------------------------------------------------------------------------------------------------------
# Honest work is never flagged


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_right_answer_and_no_solution_is_flagged(assignment):
    answers = {(exercise, how): source for exercise, variants in subs.right_answers(assignment).items()
               for how, source in variants.items()}
    answers |= {(exercise, "the solution"): source for exercise, source in subs.solution_answers(assignment).items()}
    assert len(answers) >= 10
    found = {key: [str(f) for f in review_reader.review_source(source, key[0])] for key, source in answers.items()}
    assert not {key: f for key, f in found.items() if f}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_whole_right_notebooks_are_not_flagged_and_copied_course_cells_are_not_the_student_s(assignment):
    correct = subs.correct_submission(assignment)
    notebooks = [correct] + [subs.with_answers(correct, right) for right in subs.right_answer_sets(assignment)]
    # A student who pasted every locked cell again: grading makes the copies plain cells, still the course's code
    # (Section 1's setup imports inspect and threading, a test cell calls globals()).
    pasted = copy.deepcopy(correct)
    for cell in [c for c in pasted["cells"] if c["cell_type"] == "code" and not subs.is_answer(c)]:
        plain = copy.deepcopy(cell)
        plain["metadata"].pop("nbgrader", None)
        pasted["cells"].append(plain)
    course = review_course_sources(assignment)
    for notebook in [*notebooks, pasted]:
        assert review.review_notebook(nbformat.from_dict(notebook), course) == []


def review_course_sources(assignment):
    """What ReviewStudentCode reads from source/: the locked cells, as released."""
    pp = review.ReviewStudentCode()
    pp.config.CourseDirectory.root = str(subs.COURSE_ROOT)
    return pp._course_sources(assignment, assignment)


def test_the_course_s_own_locked_cells_would_be_flagged_if_a_student_wrote_them():
    """Why copies of course cells are recognised: the review is not blind, the course may use internals."""
    master = subs.read_notebook(subs.COURSE_ROOT / "source" / "01-async-database" / "01-async-database.ipynb")
    locked = [c for c in master.cells if c.cell_type == "code" and not subs.is_answer(c)]
    assert any(review_reader.review_source("".join(c.source)) for c in locked)


@pytest.mark.parametrize("source", [
    "await asyncio.to_thread(hash_password, 'x')",  # threads through asyncio are the course's own advice
    "import asyncio, time, json, os.path, pathlib\nprint(os.getcwd(), os.environ.get('HOME'))",
    "from sqlalchemy import inspect\ncolumns = inspect(User).columns",  # SQLAlchemy's inspect, not the module
    "value = getattr(route, 'path', None)\nsetattr(ticket, 'deleted_at', None)",  # literal names
    "class Ticket(Base):\n    __tablename__ = 'tickets'\n    def __repr__(self):\n        return f'{self.id}'",
    "dependency = SessionDep.__metadata__[0].dependency\nsuper().__init__()",
    "_ = [print(i) for i in range(3)]\nx = 10 % 3\ncode = response.status_code",
    "result = (\n    a\n    % b\n)",  # a line starting with % inside an expression is not a magic
    "def broken(:\n    get_ipython()",  # does not parse: not flagged for that (its test cells say what fails)
    "from re import compile\npattern = compile('a+')\nvars = {'a': 1}",  # not the builtins, a variable's name
    "from IPython.display import HTML, display\ndisplay(HTML('<b>3 tickets</b>'))",  # output only
    # the partial-update idiom: the fields a client sent, copied by name (the capstone's update_ticket)
    "for name in changes.model_fields_set:\n    setattr(ticket, name, getattr(changes, name))",
    "for key, value in data.model_dump(exclude_unset=True).items():\n    setattr(ticket, key, value)",
])
def test_ordinary_code_is_not_flagged(source):
    assert flagged(source) == []


# ---------------------------------------------------------------------------------------------------------------
# Attacks are flagged, with cell and line


@pytest.mark.parametrize("name", ATTACKS)
def test_every_attack_of_the_hostile_class_is_flagged(name):
    notebook = nbformat.from_dict(submission_with_attack(ATTACKS[name]))
    findings = review.review_notebook(notebook)
    assert findings, name
    first_answer = next(iter(subs.autograded_exercises(notebook)))
    assert {f.where for f in findings} == {first_answer}


def test_the_hostile_class_is_read_whole():
    assert len(ATTACKS) >= 11 and "processes" in flagged(ATTACKS["harms-the-class"])  # import subprocess


INTEGRITY_UNIT_HOOKS = [  # tests/test_integrity_units.py: what the guard puts back
    "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
    "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
    "import ast\nget_ipython().ast_transformers.append(ast.NodeTransformer())",
    "import builtins\nbuiltins.sorted = lambda *a, **k: []",
    "get_ipython().user_ns['__builtins__'] = {}",
]


@pytest.mark.parametrize("source", INTEGRITY_UNIT_HOOKS)
def test_the_hooks_the_guard_puts_back_are_flagged(source):
    assert flagged(source)


@pytest.mark.parametrize("source", [  # tests/test_bad_submissions.py: calls-os-exit, kills-its-kernel, kills-the-grader
    "import os\nos._exit(1)\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
])
def test_bad_submissions_that_kill_processes_are_flagged(source):
    assert "os process call" in flagged(source)


@pytest.mark.parametrize("source,rule,line", [
    ("x = 1\nprint(In)", "input/output history", 2),
    ("print(_ih[-2])", "input/output history", 1),
    ("print(_i7)", "input/output history", 1),
    ("name = '__cl' + 'ass__'\nkind = getattr(x, name)", "computed attribute name", 2),  # not a loop over data
    ("for name in dir(x):\n    value = getattr(x, name)", "computed attribute name", 2),
    ("for name in ['f_back', 'f_code']:\n    frame = getattr(frame, name)", "computed attribute name", 2),
    ("import sys\nsys.addaudithook(lambda event, args: print(args))", "interpreter internals", 1),
    ("import linecache\nprint(linecache.cache)", "interpreter internals", 1),
    ("import gc\nobjects = gc.get_objects()", "interpreter internals", 1),
    ("from importlib import import_module\nm = import_module('s' + 'ys')", "interpreter internals", 1),
    ("import threading\nthreading.Thread(target=print).start()", "threads", 1),
    ("import _thread\n_thread.start_new_thread(print, ())", "threads", 1),
    ("import _posixsubprocess", "private module", 1),
    ("import subprocess\nsubprocess.run(['ls'])", "processes", 1),
    ("import os\nos.system('ls')", "os process call", 2),
    ("from os import fork\nfork()", "os process call", 1),
    ("import os as o\no.system('id')", "os process call", 2),
    ("from IPython import get_ipython", "kernel internals", 1),
    ("import ipykernel", "kernel internals", 1),
    ("from IPython import display", "kernel internals", 1),
    ("import asyncio\nproc = await asyncio.create_subprocess_exec('ls')", "processes (asyncio)", 2),
    ("exec('print(1)')", "dynamic code", 1),
    ("f = eval\nf('1')", "dynamic code", 1),
    ("m = __import__('sy' + 's')", "dynamic code", 1),
    ("names = globals()", "namespace access", 1),
    ("breakpoint()", "dynamic code", 1),
    ("from re import compile\ndel compile\ncode = compile('1', 'x', 'eval')", "dynamic code", 2),
    ("eval = eval\neval('1')", "dynamic code", 1),
    ("x = 1\ny = ().__class__.__base__.__subclasses__()", "dunder", 2),
    ("b = getattr(print, '__self__')", "dunder", 1),
    ("b = __builtins__", "dunder", 1),
    ("name = 'sys'\nm = getattr(os, name)", "computed attribute name", 2),
    ("def f():\n    raise ValueError\ntry:\n    f()\nexcept ValueError as e:\n    print(e.__traceback__.tb_frame.f_back)",
     "frame or code object", 6),
    ("async def c():\n    pass\nc().cr_frame", "frame or code object", 3),
    ("print(f.__code__.co_consts)", "frame or code object", 1),
    ("open('/proc/self/mem', 'rb')", "/proc or /dev/mem path", 1),
    ("import os\nx = 1\n!ls -la", "IPython magic or shell escape", 3),
    ("files = !ls", "IPython magic or shell escape", 1),
    ("x = 1\n%history -g", "IPython magic or shell escape", 2),
    ("%%bash\nls", "IPython magic or shell escape", 1),
    ("print(1)\nget_ipython?", "IPython magic or shell escape", 2),
])
def test_each_rule_flags_its_line(source, rule, line):
    findings = review_reader.review_source(source, "q1")
    assert (rule, line) in {(f.rule.name, f.line) for f in findings}, [str(f) for f in findings]
    assert all(f.code == source.splitlines()[f.line - 1].strip() for f in findings)


def test_a_magic_line_is_reported_once_as_a_magic_and_the_other_lines_as_usual():
    findings = review_reader.review_source("%time x = 1\nimport sys\n", "q1")
    assert [(f.line, f.rule.name) for f in findings] == [(1, "IPython magic or shell escape"),
                                                        (2, "interpreter internals")]


def test_every_rule_says_why():
    assert all(len(rule.why) > 30 and rule.name for rule in review_rules.RULES)
    assert len({rule.name for rule in review_rules.RULES}) == len(review_rules.RULES)


# ---------------------------------------------------------------------------------------------------------------
# Which cells are the student's


def test_locked_and_test_cells_are_not_reviewed_added_cells_are():
    nb = new_notebook(cells=[
        new_code_cell("import sys", metadata={"nbgrader": {"locked": True, "grade_id": "setup", "solution": False,
                                                            "grade": False}}),
        new_code_cell("assert globals()", metadata={"nbgrader": {"locked": True, "grade": True, "grade_id": "t1",
                                                                  "solution": False, "points": 1}}),
        new_code_cell("x = 1\nprint(In)", metadata={"nbgrader": {"solution": True, "grade": False, "locked": False,
                                                                  "grade_id": "q1"}}),
        new_markdown_cell("get_ipython() in prose is not code"),
        new_code_cell("import inspect"),  # a cell the student added
    ])
    assert [(f.where, f.line) for f in review.review_notebook(nb)] == [("q1", 2), ("#5", 1)]


def test_python_files_of_the_submission_are_reviewed_and_links_not_followed(tmp_path):
    (tmp_path / "helper.py").write_text("import os\n\ndef run():\n    os.system('id')\n")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("import sys\n")
    (tmp_path / "linked.py").symlink_to(tmp_path / "helper.py")
    found = [(f.where, f.line, f.rule.name) for f in review.review_files(tmp_path)]
    assert found == [("helper.py", 4, "os process call"), ("pkg/__init__.py", 1, "interpreter internals")]


# ---------------------------------------------------------------------------------------------------------------
# The preprocessor and the report


def _preprocess(nb, course_root, student="ada", assignment="a1"):
    pp = review.ReviewStudentCode()
    pp.config.CourseDirectory.root = str(course_root)
    resources = {"nbgrader": {"student": student, "assignment": assignment, "notebook": assignment}}
    pp.preprocess(nb, resources)
    return [r for r in outcomes.records(resources) if isinstance(r, Problem)]


def test_the_preprocessor_reports_needs_review_with_cell_and_line_and_leaves_the_notebook(tmp_path, caplog):
    folder = tmp_path / "submitted" / "ada" / "a1"
    folder.mkdir(parents=True)
    (folder / "a1.ipynb").write_text("{}")
    (folder / "tools.py").write_text("import ctypes\n")
    nb = new_notebook(cells=[new_code_cell("x = 1\nget_ipython().set_custom_exc((Exception,), print)",
                                           metadata={"nbgrader": {"solution": True, "grade_id": "q1"}})])
    before = copy.deepcopy(nb)
    with caplog.at_level("WARNING"):
        problems = _preprocess(nb, tmp_path)
    assert nb == before
    assert [p.kind for p in problems] == [ProblemKind.NEEDS_REVIEW]
    assert problems[0].cells == ("q1", "tools.py")
    assert "q1 line 2: interpreter hook" in problems[0].detail and "tools.py line 1: interpreter internals" in problems[0].detail
    assert "coursekit: needs review: cell(s) q1, tools.py" in caplog.text  # nbgrader autograde's log


def test_an_honest_notebook_reports_nothing(tmp_path):
    nb = nbformat.from_dict(subs.correct_submission("01-async-database"))
    assert _preprocess(nb, tmp_path) == []


def test_needs_review_does_not_change_the_problem_and_shows_in_the_summary():
    flag = review.as_problem(review_reader.review_source("print(In)", "q1"))
    tampered = Problem(ProblemKind.TAMPERED, "errors were hidden")
    assert diagnosis.classify([flag], None, []) is None
    assert diagnosis.classify([flag, tampered], None, []) == tampered
    assert diagnosis.reviews([flag, tampered]) == [flag]
    results = [SubmissionResult("ada", scores={"t": 1.0}, max_scores={"t": 1.0}, reviews=[flag]),
               SubmissionResult("bob", scores={"t": 1.0}, max_scores={"t": 1.0})]
    text = format_summary("a1", results, {"q1": ["t"]})
    assert "1 submission(s) need review" in text
    assert "ada  needs review: cell(s) q1 interpreter internals" in text and "q1 line 1: input/output history" in text
