"""What formgrader and feedback render from a student's notebook, with the course's nbgrader_config.py: no active
content, while text, tables, pictures and formatted markdown stay (coursekit/sanitize.py). Fast: nbconvert alone,
no kernel, no server. tests/test_instructor_safety_browser.py attacks the same in Chromium, through nbgrader.
"""
import os

import pytest
from nbconvert.exporters import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell
from nbgrader.server_extensions.formgrader import handlers
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from coursekit.sanitize import clean
from coursekit.testing import COURSE_ROOT

MARKDOWN = """# Title

Some *text*, `a <b> in code` and a [link](#Title).

<script>alert('markdown')</script>
<img src="x" onerror="alert('markdown img')">
<a href="javascript:alert('markdown link')">click</a>
<iframe srcdoc="<script>alert(1)</script>"></iframe>
<form action="/logout"><button>Submit</button></form>

| a | b |
|---|---|
| 1 | 2 |
"""
TABLE = ('<div><style scoped>.dataframe tbody tr th {vertical-align: top;}</style><table border="1" class="dataframe">'
         '<thead><tr style="text-align: right;"><th></th><th>endpoint</th></tr></thead>'
         '<tbody><tr><th>0</th><td>/report</td></tr></tbody></table></div>')
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
ACTIVE = ["<script", "onerror", "onload", "javascript:", "<iframe", "<form", "<svg", "alert("]


def student_notebook():
    nb = new_notebook()
    nb.cells.append(new_markdown_cell(MARKDOWN))
    code = new_code_cell("show()")
    code.outputs = [
        new_output("display_data", data={"text/html": TABLE + '<img src="x" onerror="alert(\'html\')">',
                                          "text/plain": "a table"}),
        new_output("display_data", data={"application/javascript": "alert('javascript')", "text/plain": "js"}),
        new_output("display_data", data={"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'>"
                                                          "<script>alert('svg')</script></svg>"}),
        new_output("display_data", data={"text/markdown": '**bold** <img src="x" onerror="alert(3)">'}),
        new_output("display_data", data={"text/html": "<b>isolated</b><script>alert('isolated')</script>"},
                   metadata={"text/html": {"isolated": True}}),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                          "text/plain": "widget"}),
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
    ]
    nb.cells.append(code)
    nb.cells.append(new_raw_cell("<script>alert('raw')</script>", metadata={"raw_mimetype": "text/html"}))
    return nb


def course_config(template: str) -> Config:
    config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_ROOT)).load_config()
    config.HTMLExporter.template_name = template  # as formgrader / GenerateFeedback set it
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    config.HTMLExporter.extra_template_paths = [os.path.join(handlers.static_path, "node_modules", "bootstrap", "dist", "css")]
    return config


def render(config: Config) -> str:
    resources = {"nbgrader": {"notebook": "n", "score": 0, "max_score": 1, "late_penalty": 0},
                 "base_url": "", "index": 0, "total": 1, "submission_id": "s", "notebook_id": "n",
                 "assignment_id": "a"}
    html, _ = HTMLExporter(config=config).from_notebook_node(student_notebook(), resources=resources)
    return html[html.index('id="notebook"'):]  # the student's part (formgrader's own scripts are in <head>)


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_the_course_config_renders_a_students_notebook_without_active_content(template):
    page = render(course_config(template))
    assert [marker for marker in ACTIVE if marker in page] == []
    # what an honest notebook shows stays: headings, code, tables (with their header cells), a PNG plot
    assert '<h1 id="user-content-Title">' in page and "<em>text</em>" in page
    assert "<code>a &lt;b&gt; in code</code>" in page
    assert '<table border="1" class="dataframe">' in page and "<th>endpoint</th>" in page and "<th>a</th>" in page
    assert f'src="data:image/png;base64,{PNG}"' in page
    assert "<strong>bold</strong>" in page and "<b>isolated</b>" in page
    # an SVG stays a picture: an <img> data URL, where the browser runs none of its scripts
    assert 'src="data:image/svg+xml;base64,' in page


@pytest.mark.parametrize("template", ["formgrade", "feedback"])
def test_without_the_course_sanitizing_the_same_notebook_renders_scripts(template):
    """Why the course's settings: nbconvert's own sanitize_html leaves the markdown cells live in nbgrader's
    formgrade and feedback templates, and escapes table headers into visible text."""
    config = course_config(template)
    del config.HTMLExporter["preprocessors"], config.HTMLExporter["filters"]
    nbconvert_only = render(config)
    assert "<script>alert('markdown')</script>" in nbconvert_only
    assert "onerror=\"alert('markdown img')\"" in nbconvert_only
    assert "&lt;th&gt;endpoint&lt;/th&gt;" in nbconvert_only
    config.HTMLExporter.sanitize_html = False
    unsanitized = render(config)
    assert "alert('javascript')" in unsanitized and 'onerror="alert(3)"' in unsanitized


@pytest.mark.parametrize("html, kept", [
    ('<a href="https://fastapi.tiangolo.com/">docs</a>', 'href="https://fastapi.tiangolo.com/"'),
    ('<a href="#Setup">setup</a>', 'href="#user-content-Setup"'),
    ('<img src="data:image/png;base64,AAAA" alt="plot">', 'src="data:image/png;base64,AAAA"'),
])
def test_links_and_data_images_stay(html, kept):
    assert kept in clean(html)


@pytest.mark.parametrize("html", [
    '<img src="/logout">', '<img src="https://tracker.example/pixel.png">', '<a href="data:text/html,<script>1">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>', '<div style="position:fixed;inset:0">overlay</div>',
    '<math><mtext><img src=x onerror=alert(1)></mtext></math>', '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">', '<object data="x.swf"></object>',
    '<svg><animate onbegin="alert(1)"/></svg>', '<details open ontoggle="alert(1)">x</details>',
])
def test_what_loads_or_runs_by_itself_goes(html):
    cleaned = clean(html)
    for marker in ("/logout", "tracker", "data:text", "javascript", "style", "onerror", "<base", "<meta", "<object",
                   "onbegin", "ontoggle", "<svg", "<math"):
        assert marker not in cleaned.lower(), (html, cleaned)
