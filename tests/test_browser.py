"""A student's first session, in a real browser: README's `make start`, the start page, Section 1, an exercise.

Headless Chromium from the distribution's packages (`make test` installs Debian's `chromium` when it is missing
and it runs as root), driven by Playwright with that system browser: nothing is downloaded at test time.
Screenshots of every step are saved in artifacts/browser/ (git-ignored).
"""
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from coursekit.testing import COURSE_ROOT, free_port, stop
from coursekit import testing as subs

pytestmark = pytest.mark.slow  # starts JupyterLab: skipped by `-m "not slow"`

ARTIFACTS = COURSE_ROOT / "artifacts" / "browser"
SECTION = "01-async-database"
TOKEN = "course-browser-test"
# What a student's copy of the course holds: README's command 1 works in it as it does in the repository.
STUDENT_COPY = ["Makefile", "requirements.txt", "nbgrader_config.py", "jupyter-student", "notebooks", "release"]
KERNEL_WAIT_MS = 90_000  # a kernel on a busy 2-core machine: Playwright's 5-30 s defaults are too short
@pytest.fixture
def student_lab(tmp_path):
    """README's command 1, `make start`, run in a student's copy of the course; yields the server's URL.

    The copy holds what a student gets (no source/, solutions/ or instructor tooling) and shares this checkout's
    .venv: the repository's notebooks stay untouched while the student types, saves and validates. A workspace
    and settings folder of its own keep the developer's JupyterLab layout out of the test.
    """
    course = tmp_path / "course"
    course.mkdir()
    for name in STUDENT_COPY:
        copy = shutil.copytree if (COURSE_ROOT / name).is_dir() else shutil.copy2
        copy(COURSE_ROOT / name, course / name)
    (course / ".venv").symlink_to(COURSE_ROOT / ".venv")
    port = free_port()
    lab_args = " ".join([
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
    ])
    log = (tmp_path / "jupyterlab.log").open("w+")
    server = subprocess.Popen(["make", "--no-print-directory", "start", f"PORT={port}", f"LAB_ARGS={lab_args}"],
                              cwd=course, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"`make start` did not serve JupyterLab on port {port}:\n{log.read()[-3000:]}")
                time.sleep(0.3)
        yield base
    finally:
        stop(server)
        log.seek(0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "jupyterlab.log").write_text(log.read())
        log.close()


def first_exercise(assignment: str) -> tuple[int, int, list[int], str]:
    """(index of the first answer cell, index of its first test cell, the code cells from the answer to that test,
    the answer a student would type), in the release notebook: JupyterLab shows its cells in the same order."""
    cells = subs.blank_submission(assignment)["cells"]
    answer = next(i for i, c in enumerate(cells) if subs.is_answer(c) and c["cell_type"] == "code")
    grade_id = subs.nbgrader_meta(cells[answer])["grade_id"]
    test = next(i for i, c in enumerate(cells) if subs.is_test(c) and subs.nbgrader_meta(c)["grade_id"].startswith(f"test_{grade_id}"))
    to_run = [i for i in range(answer, test + 1) if cells[i]["cell_type"] == "code"]
    solution = subs.solution_answers(assignment)[grade_id]
    typed = "\n".join(line for line in solution.splitlines() if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return answer, test, to_run, typed


def test_a_student_opens_section_1_runs_it_answers_the_first_exercise_and_finds_validate(browser_path, student_lab):
    from playwright.sync_api import expect, sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    answer_index, test_index, to_run, typed_answer = first_exercise(SECTION)
    shots, started = [], time.monotonic()

    def shot(page, name):
        path = ARTIFACTS / f"{len(shots) + 1:02d}-{name}.png"
        page.screenshot(path=path)
        shots.append(path)
        with (ARTIFACTS / "steps.txt").open("a") as steps:
            steps.write(f"{time.monotonic() - started:6.1f} s  {path.name}\n")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(KERNEL_WAIT_MS)
        expect.set_options(timeout=KERNEL_WAIT_MS)
        try:
            # 1. The server's front page opens JupyterLab on the course's start page.
            page.goto(f"{student_lab}/?token={TOKEN}")
            expect(page).to_have_url(re.compile(r"/lab/tree/notebooks/start\.ipynb"))
            start = page.locator(".jp-NotebookPanel:visible")
            expect(start.locator(".jp-RenderedMarkdown h2", has_text="The sections")).to_be_visible()
            for title in ("Async database", "Dependency injection", "CRUD operations", "Capstone: the help desk as one app"):
                expect(start.get_by_role("link", name=title, exact=True)).to_be_visible()
            shot(page, "start-page")

            # 2. The link to Section 1, by its text (the first link of a heading is its anchor).
            start.get_by_role("link", name="Async database", exact=True).click()
            notebook = page.locator(".jp-NotebookPanel:visible")
            expect(notebook.locator(".jp-RenderedMarkdown h1", has_text="Section 1")).to_be_visible()
            expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text=f"{SECTION}.ipynb")).to_be_visible()
            wait_for_idle_kernel(page, notebook)
            shot(page, "section-1-opened")

            # 3. Run > Run All Cells stops at the first exercise with NotImplementedError, and only there.
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator('[data-command="runmenu:run-all"]').click()
            cells = notebook.locator(".jp-Notebook .jp-Cell")
            test_cell = cells.nth(test_index)
            stderr = '[data-mime-type="application/vnd.jupyter.stderr"]'
            expect(notebook.locator(f".jp-Cell {stderr}").first).to_contain_text("NotImplementedError")
            wait_for_idle_kernel(page, notebook)
            errors_in = cells.evaluate_all(
                "cells => cells.flatMap((c, i) => c.querySelector('[data-mime-type*=stderr]') ? [i] : [])")
            assert errors_in in ([answer_index], [test_index]), (
                f"Run All should stop at the first exercise (cell {answer_index} or its test {test_index}), "
                f"errors in cells {errors_in}")
            prompts = cells.evaluate_all("cells => cells.map(c => c.querySelector('.jp-InputArea-prompt')?.textContent ?? '')")
            ran_after = [i for i, prompt in enumerate(prompts) if i > errors_in[0] and re.search(r"\d", prompt)]
            assert not ran_after, f"Run All should not go past the exercise, but cells {ran_after} ran"
            show(test_cell)
            shot(page, "run-all-stops-at-exercise-1")

            # 4. The student replaces the stub with an answer (insert_text: typing would let the editor auto-indent).
            answer_cell = cells.nth(answer_index)
            expect(answer_cell).to_contain_text("raise NotImplementedError()")
            answer_cell.locator(".cm-content").click()
            page.keyboard.press("Control+A")  # inside the editor: selects the cell's text, not all cells
            page.keyboard.insert_text(typed_answer)
            expect(answer_cell.locator(".cm-content")).to_contain_text(typed_answer.strip().splitlines()[-1].strip())
            expect(answer_cell.locator(".cm-content")).not_to_contain_text("NotImplementedError")
            shot(page, "answer-typed")

            # 5. Run the answer (Ctrl+Enter: Shift+Enter would add cells) and the cells down to its test: it passes.
            for index in to_run:
                run_cell(page, notebook, cells.nth(index), click_editor=index == answer_index)
            expect(notebook.locator(f".jp-Cell {stderr}")).to_have_count(0)
            assert test_cell.locator(".jp-OutputArea-output").count() == 0, test_cell.inner_text()
            show(test_cell)
            shot(page, "test-passes")

            # 6. nbgrader's Validate button is in the toolbar and answers (the other exercises are still to do).
            validate = notebook.locator("jp-button.validate-button")
            expect(validate).to_be_visible()
            validate.click()
            result = page.locator(".jp-Dialog #validation-message")
            expect(result).to_be_visible()
            expect(result).to_have_class(re.compile(r"validation-(failed|success)"))
            assert "validation-failed" in result.get_attribute("class"), "the other exercises are unanswered: Validate should say so"
            shot(page, "validate")
            page.locator(".jp-Dialog .jp-mod-accept").click()

            # 7. The student's JupyterLab shows no instructor tools (formgrader, Create Assignment, courses).
            page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
            menu = page.locator(".lm-Menu:visible")
            expect(menu).to_contain_text("Assignment List")
            for instructor_only in ("Formgrader", "Course List", "Create assignment"):
                assert instructor_only not in menu.inner_text(), f"students should not see {instructor_only!r}"
            assert page.locator("#nbgrader-create_assignemnt").count() == 0, "the Create Assignment sidebar is shown"
            shot(page, "student-menu")
            page.keyboard.press("Escape")
        except Exception:
            page.screenshot(path=ARTIFACTS / "failure.png")
            raise
        finally:
            browser.close()
    assert all(p.stat().st_size > 0 for p in shots)


def show(cell):
    """Make `cell` the active cell (JupyterLab scrolls to it) and wait until it is painted on screen."""
    from playwright.sync_api import expect

    cell.locator(".jp-InputArea-prompt").click()
    expect(cell.locator(".jp-InputArea-prompt")).to_be_in_viewport()


def wait_for_idle_kernel(page, notebook):
    """The kernel is started and idle (the indicator alone says idle for a moment before the kernel starts)."""
    from playwright.sync_api import expect

    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "idle")


def run_cell(page, notebook, cell, click_editor):
    """Select `cell`, run it with Ctrl+Enter and wait until its prompt shows a new execution count."""
    from playwright.sync_api import expect

    prompt = cell.locator(".jp-InputArea-prompt")
    before = prompt.inner_text()
    (cell.locator(".cm-content") if click_editor else prompt).click()
    page.keyboard.press("Control+Enter")
    expect(prompt).not_to_have_text(before)
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"))
    wait_for_idle_kernel(page, notebook)
