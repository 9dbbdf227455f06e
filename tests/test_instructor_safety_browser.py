"""Nothing a student writes runs in the instructor's browser: formgrader and feedback, attacked in Chromium.

A hostile Section 1 submission (right answers, so it is graded like any other) whose answer cells also display
HTML with an `onerror`, a `<script>`, an `<iframe srcdoc>`, "isolated" HTML, an SVG with a script, JavaScript and
markdown with an `onerror`, plus a markdown cell of its own with a raw `<script>` and a `javascript:` link; an
honest one that shows a pandas-like HTML table and a matplotlib plot. Both are autograded, a Jupyter server with
formgrader is started as the instructor, and a logged-in Chromium opens each submission in formgrader and the
hostile feedback page (`nbgrader generate_feedback`). Every payload calls back to `/pwned/<name>` on the server:
Playwright sees every request, from every frame.

The same is done on a copy of the course with the course's sanitizing switched off (three lines appended to its
nbgrader_config.py): there the payloads do run, which shows that this test can fail.
"""
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coursekit import testing as subs
from coursekit.nbgrader_cli import ENV_WITH_VENV, nbgrader
from coursekit.testing import free_port, stop

pytestmark = pytest.mark.slow  # grades two notebooks, starts two Jupyter servers and Chromium

SECTION = "01-async-database"
TOKEN = "course-instructor-safety-test"
PAGE_WAIT_MS = 30_000
SANITIZING_OFF = """
# the control run of tests/test_instructor_safety_browser.py: the course's sanitizing switched off
c.HTMLExporter.sanitize_html = False
c.HTMLExporter.preprocessors = []
c.HTMLExporter.filters = {}
"""


def payload(name: str) -> str:
    """JavaScript that reports it ran: a request for /pwned/<name> and a mark on the window."""
    return f"(window.__pwned = window.__pwned || []).push('{name}'); fetch('/pwned/{name}').catch(() => 0)"


def absolute_payload(name: str, origin: str) -> str:
    """The same from a frame of another origin (an iframe's srcdoc or data: URL): an absolute URL."""
    return f"fetch('{origin}/pwned/{name}', {{mode: 'no-cors'}}).catch(() => 0)"


def hostile_answers(origin: str) -> dict[str, str]:
    """The solution of each exercise, followed by a display of active content (what an attacker appends)."""
    answers = subs.solution_answers(SECTION)
    def show(kind: str, content: str, extra: str = "") -> str:
        return f"display({kind}({content!r}){extra})"

    onerror = lambda name: '<img src="x" onerror="' + payload(name) + '">'
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" onload="'
           + absolute_payload("svg-onload", origin) + '"><script>' + absolute_payload("svg-script", origin)
           + '</script><rect width="20" height="20"/></svg>')
    attacks = {
        "q1_nonblocking": [
            show("HTML", onerror("html-onerror")),
            show("HTML", "<script>" + payload("html-script") + "</script>"),
            show("HTML", '<iframe srcdoc="<script>' + absolute_payload("iframe-srcdoc", origin) + '</script>"></iframe>'),
        ],
        "get_db": [show("SVG", svg), show("Javascript", payload("javascript"))],
        "q3_missing_await": [
            show("Markdown", "**markdown** " + onerror("markdown-output")),
            show("HTML", "<b>isolated</b><script>" + absolute_payload("isolated-html", origin) + "</script>",
                 ", metadata={'isolated': True}"),
            show("HTML", '<a id="student-link" href="javascript:' + payload("javascript-url") + '">a link</a>'),
        ],
    }
    for grade_id, lines in attacks.items():
        answers[grade_id] += ("\n\nfrom IPython.display import HTML, SVG, Javascript, Markdown, display\n"
                              + "\n".join(lines) + "\n")
    return answers


HOSTILE_MARKDOWN = """## My notes

<script>{script}</script>
<img src="x" onerror="{onerror}">

[a link](javascript:alert(document.cookie))
"""

HONEST_ANSWER_EXTRA = '''

# An honest student shows a table (as pandas renders one) and a plot of the timings.
from IPython.display import HTML, display
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt

display(HTML("""<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style>
<table border="1" class="dataframe" id="timings"><thead><tr style="text-align: right;"><th></th>
<th>endpoint</th><th>seconds</th></tr></thead><tbody><tr><th>0</th><td>/report</td><td>0.11</td></tr>
<tr><th>1</th><td>/report/blocking</td><td>1.02</td></tr></tbody></table></div>"""))
figure, axes = plt.subplots(figsize=(3, 2))
axes.bar(["async", "blocking"], [0.11, 1.02])
axes.set_ylabel("seconds")
plt.show()
'''


def hostile_submission(origin: str) -> dict:
    notebook = subs.with_answers(subs.blank_submission(SECTION), hostile_answers(origin))
    notebook["cells"].append({
        "cell_type": "markdown", "metadata": {}, "id": "hostile-notes",
        "source": HOSTILE_MARKDOWN.format(script=payload("markdown-script"), onerror=payload("markdown-onerror")),
    })
    return notebook


def honest_submission() -> dict:
    answers = subs.solution_answers(SECTION)
    answers["q1_nonblocking"] += HONEST_ANSWER_EXTRA
    return subs.with_answers(subs.blank_submission(SECTION), answers)


def submission_ids(course: Path) -> dict[str, str]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {student: gradebook.find_submission_notebook(SECTION, SECTION, student).id
                for student in ("hostile", "honest")}


def start_formgrader(course: Path, port: int, log_path: Path) -> subprocess.Popen:
    """The instructor's Jupyter server, run from the course folder (so formgrader reads its nbgrader_config.py)."""
    log = log_path.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--allow-root", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}", "--ServerApp.root_dir=."],
        cwd=course, env=ENV_WITH_VENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_serving(server: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Jupyter server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def graded_courses(tmp_path_factory):
    """(course with the course's config, the same course with sanitizing off, their ports), graded once."""
    root = tmp_path_factory.mktemp("instructor-safety")
    ports = {"course": free_port(), "control": free_port()}
    course = subs.make_course_folder(root / "course", [SECTION])
    # one hostile notebook serves both servers: its callbacks name the server that shows it
    subs.write_submission(course, "hostile", SECTION, hostile_submission(origin="__ORIGIN__"))
    subs.write_submission(course, "honest", SECTION, honest_submission())
    nbgrader(course, "autograde", SECTION, "--force")
    # The honest plot is graded as honest work: matplotlib's own process (fc-list) and callbacks are not tampering.
    honest = (course / "autograded" / "honest" / SECTION / f"{SECTION}.ipynb").read_text()
    assert "GradingIntegrityError" not in honest and "The grader forbids" not in honest
    control = root / "control"
    shutil.copytree(course, control)
    with (control / "nbgrader_config.py").open("a") as config:
        config.write(SANITIZING_OFF)
    feedback = []
    for folder, port in ((course, ports["course"]), (control, ports["control"])):
        graded = folder / "autograded" / "hostile" / SECTION / f"{SECTION}.ipynb"
        graded.chmod(0o644)  # nbgrader leaves autograded notebooks read-only (444): root writes anyway, a user not
        graded.write_text(graded.read_text().replace("__ORIGIN__", f"http://127.0.0.1:{port}"))
        feedback.append(subprocess.Popen(  # both at once: the two courses share nothing
            [sys.executable, "-m", "nbgrader", "generate_feedback", SECTION, "--student=hostile", "--force"],
            cwd=folder, env=ENV_WITH_VENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process in feedback:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"nbgrader generate_feedback failed:\n{output[-3000:]}"
    return course, control, ports


def test_a_hostile_submission_runs_no_script_in_formgrader_or_feedback_and_an_honest_one_shows_its_table_and_plot(
        browser_path, graded_courses, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    course, control, ports = graded_courses
    servers = {name: start_formgrader(folder, ports[name], tmp_path / f"{name}.log")
               for name, folder in (("course", course), ("control", control))}
    ran = {}  # server -> page -> payloads that called back
    try:
        for name, server in servers.items():
            wait_until_serving(server, f"http://127.0.0.1:{ports[name]}", tmp_path / f"{name}.log")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
            try:
                for name, folder in (("course", course), ("control", control)):
                    ran[name] = visit(browser, name, folder, ports[name], expect)
            finally:
                browser.close()
    finally:
        for server in servers.values():
            stop(server)

    every_payload = {"html-onerror", "html-script", "iframe-srcdoc", "svg-onload", "svg-script", "javascript",
                     "markdown-output", "isolated-html", "markdown-script", "markdown-onerror"}
    print(f"payloads that ran: {json.dumps({k: {p: sorted(v) for p, v in d.items()} for k, d in ran.items()})}")
    assert ran["course"] == {"formgrader hostile": set(), "formgrader honest": set(), "feedback hostile": set()}, (
        "a student's script ran in the instructor's browser")
    # The control: the same pages with the course's sanitizing off. A payload that never runs here proves nothing.
    assert {"html-onerror", "html-script", "javascript", "markdown-script", "markdown-onerror"} <= (
        ran["control"]["formgrader hostile"]), ran["control"]
    assert ran["control"]["feedback hostile"], ran["control"]
    assert not ran["control"]["formgrader hostile"] - every_payload, ran["control"]


def visit(browser, name: str, course: Path, port: int, expect) -> dict[str, set[str]]:
    """Open the hostile and honest submissions in formgrader and the hostile feedback file as a logged-in
    instructor; check what must show; return, per page, the payloads that called back."""
    base = f"http://127.0.0.1:{port}"
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_WAIT_MS)
    called = []
    context.on("request", lambda request: called.append(request.url))
    ran = {}

    def shot(label: str, near):
        near.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{name}-{label.replace(' ', '-')}.png")

    def open_and_collect(label: str, url: str):
        called.clear()
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)  # an onerror or a frame's script that fires just after the network is idle
        marks = set(page.evaluate("window.__pwned || []"))
        ran[label] = {re.sub(r".*/pwned/", "", url) for url in called if "/pwned/" in url} | marks

    try:
        page.goto(f"{base}/formgrader?token={TOKEN}")  # logs in: the cookie is set for the pages below
        expect(page.locator("body")).to_contain_text("Manage Assignments")
        ids = submission_ids(course)

        open_and_collect("formgrader hostile", f"{base}/formgrader/submissions/{ids['hostile']}/")
        notebook = page.locator("#notebook-container").first  # formgrade nests nbconvert's page in its own
        expect(notebook).to_contain_text("My notes")  # the student's markdown cell is shown, as text
        if name == "course":
            # formgrader's own scripts still work: they fill in each graded cell's autograded score from its API
            expect(page.locator("input.score").first).to_have_attribute("placeholder", re.compile(r"^\d"))
            assert active_content(notebook) == [], "active content left in the student's part of the page"
        shot("formgrader hostile", notebook.locator("h2", has_text="My notes"))

        if name == "course":  # (the control needs no honest page: the honest one has nothing to run)
            open_and_collect("formgrader honest", f"{base}/formgrader/submissions/{ids['honest']}/")
            table = page.locator("#notebook-container table.dataframe").first
            expect(table.locator("th", has_text="endpoint")).to_be_visible()
            expect(table.locator("td", has_text="/report/blocking")).to_be_visible()
            plot = page.locator("#notebook-container .output_png img").first
            expect(plot).to_be_visible()
            assert plot.evaluate("img => img.naturalWidth") > 100, "the matplotlib plot is not a picture"
            expect(page.locator("#notebook-container h1").first).to_be_visible()  # markdown still formatted
            shot("formgrader honest", table)

        feedback = course / "feedback" / "hostile" / SECTION / f"{SECTION}.html"
        open_and_collect("feedback hostile", feedback.as_uri())
        expect(page.locator("body")).to_contain_text("My notes")
        if name == "course":
            assert active_content(page.locator("#notebook-container").first) == [], "active content in feedback"
        shot("feedback hostile", page.locator("h2", has_text="My notes"))
    finally:
        context.close()
    return ran


def active_content(root) -> list[str]:
    """Elements under `root` that could run code: scripts, frames, inline SVG, on* handlers, javascript: URLs."""
    return root.evaluate("""root => [...root.querySelectorAll('*')].flatMap(e =>
        ['script', 'iframe', 'object', 'embed', 'svg', 'math', 'form'].includes(e.localName) ? [e.localName] :
        [...e.attributes].filter(a => /^on/i.test(a.name) || /^\\s*(javascript|data):/i.test(a.value) && a.name != 'src')
            .map(a => `${e.localName}[${a.name}=${a.value.slice(0, 40)}]`))""")


ARTIFACTS = subs.COURSE_ROOT / "artifacts" / "instructor-safety"  # screenshots (git-ignored)
