"""The course's settings, read as nbgrader and coursekit resolve them (traitlets), not as raw config: no kernel."""
import threading
from multiprocessing import Pipe

import pytest
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader import preprocessors as nbgrader_preprocessors
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from coursekit.foreign_cells import ForgetForeignCells
from coursekit.grading import Grading
from coursekit.preprocessors import DeduplicateCells, GuardedExecute, HideHiddenTestTracebacks, KeepCourseSkipTags
from coursekit.restore_cells import RestoreMissingCells
from coursekit.testing import COURSE_ROOT
from coursekit.worker import GradeJob, WorkerAnswer, serve

# Where the course departs from nbgrader's preprocessor lists, each for a reason nbgrader_config.py gives.
SUBSTITUTIONS = {
    nbgrader_preprocessors.DeduplicateIds: DeduplicateCells,  # a copied cell no longer fails the notebook
    nbgrader_preprocessors.OverwriteCells: RestoreMissingCells,  # a deleted cell after a locked cell comes back
    nbgrader_preprocessors.Execute: GuardedExecute,  # output cap, memory limit, timing
}
INSERTED = {  # list -> [(preprocessor added, the one it comes before)]
    "sanitize_preprocessors": [
        (KeepCourseSkipTags, nbgrader_preprocessors.CheckCellMetadata),  # a student's skip tag goes before running
        (ForgetForeignCells, nbgrader_preprocessors.OverwriteKernelspec),  # a cell pasted from elsewhere: plain cell
    ],
    "autograde_preprocessors": [],
    "preprocessors": [  # generate_feedback
        (nbgrader_preprocessors.ClearHiddenTests, CSSHTMLHeaderPreprocessor),  # feedback shows no hidden test
        (HideHiddenTestTracebacks, nbgrader_preprocessors.ClearHiddenTests),  # ... nor its line in a traceback
    ],
}


def resolved(converter, config, trait):
    """The converter's list as nbgrader resolves it (classes; names in config are imported by traitlets)."""
    from traitlets.utils.importstring import import_item

    value = getattr(converter(coursedir=CourseDirectory(config=config), config=config), trait)
    return [import_item(p) if isinstance(p, str) else p for p in value]


@pytest.fixture(scope="module")
def course_config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(COURSE_ROOT)).load_config()


@pytest.mark.parametrize("converter,trait", [(Autograde, "sanitize_preprocessors"),
                                             (Autograde, "autograde_preprocessors"),
                                             (GenerateFeedback, "preprocessors")])
def test_the_course_uses_nbgraders_preprocessors_apart_from_the_documented_substitutions(course_config, converter, trait):
    expected = [SUBSTITUTIONS.get(p, p) for p in resolved(converter, Config(), trait)]
    for added, before in INSERTED[trait]:
        expected.insert(expected.index(before), added)
    assert resolved(converter, course_config, trait) == expected


def test_grading_settings_are_traits_with_config_and_resolved_defaults():
    config = Config()
    config.Grading.jobs = 3
    settings = Grading(config=config, cell_timeout=20)
    assert settings.workers_for(students=10) == 3 and settings.workers_for(students=2) == 2
    assert settings.deadline_for(notebooks=2) == 2 * settings.notebook_deadline + 60
    setup = settings.worker_setup()
    assert setup.config.Execute.timeout == 20 and "CourseDirectory" not in setup.config
    assert setup.sqlite_busy_timeout == Grading().sqlite_busy_timeout == 120
    assert Grading().workers_for(students=100) >= 1


def test_warm_kernels_are_the_default_and_the_provisioner_gets_the_courses_preload_list(course_config, monkeypatch):
    """What GuardedExecute tells the sandbox provisioner, with the course's config and with --cold-kernels."""
    from coursekit import sandbox
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)  # wiring only: no kernel starts here
    warm = GuardedExecute(config=course_config, kernel_name="python3")
    spec = warm.create_kernel_manager().kernel_spec.metadata["kernel_provisioner"]
    assert spec["config"]["warm"] is True
    assert {"fastapi", "sqlalchemy.ext.asyncio", "aiosqlite", "httpx", "jwt"} <= set(spec["config"]["preload_modules"])

    cold_config = Config(course_config)
    cold_config.merge(Grading(warm_kernels=False).worker_setup().config)  # what `coursekit grade --cold-kernels` sets
    cold = GuardedExecute(config=cold_config, kernel_name="python3").create_kernel_manager().kernel_spec.metadata["kernel_provisioner"]
    assert cold["config"]["warm"] is False
    assert "warm_kernels" not in Grading().worker_setup().config.GuardedExecute  # the course's choice stands


def test_the_worker_protocol_answers_each_job_in_turn_until_the_parent_hangs_up():
    parent, child = Pipe()
    started = []

    def start(setup):
        started.append(setup)
        return "app"

    thread = threading.Thread(target=serve, args=(child, start, lambda app, job: WorkerAnswer(job.student, log=app)))
    thread.start()
    parent.send("setup")
    for student in ("ada", "grace"):
        parent.send(GradeJob("a", student))
        assert parent.recv() == WorkerAnswer(student, log="app")
    parent.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and started == ["setup"]
