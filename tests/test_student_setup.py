"""What a student's JupyterLab is made of, on a laptop (`make start`) and on Binder (environment.yml + start).

- Binder builds the top-level environment.yml (the same pins as requirements.txt, compared in
  test_environment.py) with nothing fetched by a build script, and opens JupyterLab on the start page or a section.
- The student's JupyterLab hides nbgrader's instructor tools (formgrader, Create Assignment, course list) and
  keeps what students use: the Validate button and the assignment list. README's badges open every section.
"""
import importlib.util
import json
import re
import subprocess

import pytest

from coursekit import assignments
from coursekit.testing import COURSE_ROOT, pins

STUDENT_CONFIG = COURSE_ROOT / "jupyter-student"
NBGRADER_LAB = COURSE_ROOT / ".venv" / "share" / "jupyter" / "labextensions" / "@jupyter" / "nbgrader"
INSTRUCTOR_PLUGINS = {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                      "@jupyter/nbgrader:course-list"}
STUDENT_PLUGINS = {"@jupyter/nbgrader:validate-assignment", "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:menu"}
INSTRUCTOR_SERVER_EXTENSIONS = {"nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"}
DEV_ONLY = {"nbval", "playwright"}  # pytest is a student tool too: the capstone's students run their own suite


def test_binder_builds_the_top_level_environment_yml_and_fetches_nothing_else():
    # repo2docker reads binder/ or .binder/ instead of the top level when one exists; postBuild could fetch anything.
    for hidden in ("binder", ".binder", "postBuild", "apt.txt", "Dockerfile"):
        assert not (COURSE_ROOT / hidden).exists(), f"{hidden} would change what Binder builds; keep environment.yml alone"
    environment = pins((COURSE_ROOT / "environment.yml").read_text().splitlines())
    assert "nbgrader" in environment, "the Validate button is nbgrader's: students need it"
    assert not DEV_ONLY & set(environment), f"test tools do not belong in the student environment: {DEV_ONLY & set(environment)}"


def test_binder_start_script_gives_the_student_setup_and_runs_the_server():
    result = subprocess.run(["bash", str(COURSE_ROOT / "start"), "sh", "-c", 'echo "$JUPYTER_CONFIG_PATH"'],
                            capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    assert result.stdout.strip().split(":")[0] == str(STUDENT_CONFIG)


def test_make_start_uses_the_student_setup_and_opens_the_start_page():
    dry_run = subprocess.run(["make", "-n", "--no-print-directory", "start"], cwd=COURSE_ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert "jupyter-student" in dry_run and "JUPYTER_CONFIG_PATH" in dry_run
    # `jupyter lab` sets the server's default URL from LabApp's own: ServerApp.default_url would be overridden.
    assert "--LabApp.default_url=/lab/tree/notebooks/start.ipynb" in dry_run


def test_the_students_jupyterlab_hides_the_instructor_tools_and_keeps_validate():
    disabled = json.loads((STUDENT_CONFIG / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    disabled = {name for name, off in disabled.items() if off}
    assert INSTRUCTOR_PLUGINS <= disabled
    assert not STUDENT_PLUGINS & disabled, "Validate, the assignment list and the Nbgrader menu stay"
    server = json.loads((STUDENT_CONFIG / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert {name for name, on in server.items() if not on} == INSTRUCTOR_SERVER_EXTENSIONS
    # The names must be those of the installed nbgrader, or disabling them silently does nothing.
    bundle = "".join(p.read_text(errors="replace") for p in (NBGRADER_LAB / "static").glob("*.js"))
    for plugin in INSTRUCTOR_PLUGINS | STUDENT_PLUGINS:
        assert f'"{plugin}"' in bundle, f"nbgrader's lab extension has no plugin {plugin}"
    for module in INSTRUCTOR_SERVER_EXTENSIONS:
        assert importlib.util.find_spec(module), f"nbgrader has no server extension {module}"


def test_readme_binder_badges_open_the_start_page_and_every_section():
    readme = (COURSE_ROOT / "README.md").read_text()
    opened = re.findall(r"https://mybinder\.org/v2/gh/[^)\s]+\?urlpath=lab/tree/([^)\s]+)\)", readme)
    expected = ["notebooks/start.ipynb"] + [f"release/{a}/{a}.ipynb" for a in assignments(COURSE_ROOT)]
    for path in expected:
        assert path in opened, f"README has no Binder badge opening {path}"
    for path in opened:
        assert (COURSE_ROOT / path).is_file(), f"README's Binder badge opens {path}, which does not exist"


@pytest.mark.parametrize("assignment", assignments(COURSE_ROOT))
def test_the_start_page_links_to_each_release_notebook(assignment):
    start = json.loads((COURSE_ROOT / "notebooks" / "start.ipynb").read_text())
    text = "".join("".join(cell["source"]) for cell in start["cells"])
    link = f"../release/{assignment}/{assignment}.ipynb"
    assert f"]({link})" in text, f"the start page has no link to {link}"
    assert (COURSE_ROOT / "notebooks" / link).resolve().is_file()
