"""The course's settings, read as nbgrader and coursekit resolve them (traitlets), not as raw config: no kernel."""
import importlib
import inspect
import os
import pkgutil
import sys
import threading
import time
from multiprocessing import Pipe

import pytest
from jupyter_client.provisioning import KernelProvisionerFactory
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader import preprocessors as nbgrader_preprocessors
from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config, Configurable

import coursekit.config
from coursekit import grading, jobs
from coursekit import sandbox
from coursekit.__main__ import main
from coursekit.grade_worker import autograde_app
from coursekit.gradeapp import GradeApp
from coursekit.foreign_cells import ForgetForeignCells
from coursekit.grading import Grading
from coursekit.preprocessors import DeduplicateCells, GuardedExecute, HideHiddenTestTracebacks, KeepCourseSkipTags
from coursekit.restore_cells import RestoreMissingCells
from coursekit.review import ReviewStudentCode
from coursekit.scrub import ScrubHiddenTestText
from coursekit.submission_files import CarryNbgraderFiles, CheckSubmittedFiles
from coursekit.testing import COURSE_ROOT
from coursekit.warm import WarmKernelError
from coursekit.worker import GradeJob, WorkerAnswer, serve

# Where the course departs from nbgrader's preprocessor lists, each for a reason nbgrader_config.py gives.
SUBSTITUTIONS = {
    nbgrader_preprocessors.DeduplicateIds: DeduplicateCells,  # a copied cell no longer fails the notebook
    nbgrader_preprocessors.OverwriteCells: RestoreMissingCells,  # a deleted cell after a locked cell comes back
    nbgrader_preprocessors.Execute: GuardedExecute,  # output cap, memory limit, timing
}
INSERTED = {  # list -> [(preprocessor added, the one it comes before)]
    "sanitize_preprocessors": [
        (CheckSubmittedFiles, nbgrader_preprocessors.ClearOutput),  # symbolic links refused, other files listed
        (ForgetForeignCells, nbgrader_preprocessors.OverwriteKernelspec),  # a cell pasted from elsewhere: plain cell
        (KeepCourseSkipTags, nbgrader_preprocessors.CheckCellMetadata),  # a student's skip tag goes before running
        (ReviewStudentCode, nbgrader_preprocessors.CheckCellMetadata),  # interpreter internals: "needs review"
    ],
    "autograde_preprocessors": [
        (ScrubHiddenTestText, nbgrader_preprocessors.IgnorePattern),  # no output quotes a hidden test
    ],
    "preprocessors": [  # generate_feedback
        (CarryNbgraderFiles, nbgrader_preprocessors.GetGrades),  # timestamp.txt for release_feedback
        (nbgrader_preprocessors.ClearHiddenTests, CSSHTMLHeaderPreprocessor),  # feedback shows no hidden test
        (HideHiddenTestTracebacks, nbgrader_preprocessors.ClearHiddenTests),  # ... nor its line in a traceback
        (ScrubHiddenTestText, nbgrader_preprocessors.ClearHiddenTests),  # ... nor any other output
    ],
}


def resolved(converter, config, trait):
    """The converter's list as nbgrader resolves it (classes; names in config are imported by traitlets)."""
    from traitlets.utils.importstring import import_item

    value = getattr(converter(coursedir=CourseDirectory(config=config), config=config), trait)
    return [import_item(p) if isinstance(p, str) else p for p in value]


@pytest.fixture(scope="module")
def course_config():
    return coursekit.config.course_config(COURSE_ROOT)


def command_line(*argv) -> Config:
    """What `coursekit grade A ARGV...` sets on top of the course's configuration."""
    app = GradeApp()
    app.parse_command_line(["A", *argv])
    return app.cli_config


@pytest.mark.parametrize("converter,trait", [(Autograde, "sanitize_preprocessors"),
                                             (Autograde, "autograde_preprocessors"),
                                             (GenerateFeedback, "preprocessors")])
def test_the_course_uses_nbgraders_preprocessors_apart_from_the_documented_substitutions(course_config, converter, trait):
    expected = [SUBSTITUTIONS.get(p, p) for p in resolved(converter, Config(), trait)]
    for added, before in INSERTED[trait]:
        expected.insert(expected.index(before), added)
    assert resolved(converter, course_config, trait) == expected


def test_grading_settings_are_traits_with_config_and_resolved_defaults(monkeypatch):
    config = Config()
    config.Grading.jobs = 3
    settings = Grading(config=config)
    assert settings.workers_for(students=10) == 3 and settings.workers_for(students=2) == 2
    assert settings.deadline_for(notebooks=2) == 2 * settings.notebook_deadline + 60
    assert Grading().sqlite_busy_timeout == 120
    # jobs=0: one worker per core this process may use, never more than there are students, never none
    monkeypatch.setattr(jobs, "available_cores", lambda: 6)
    assert [Grading().workers_for(students=n) for n in (100, 4, 0)] == [6, 4, 1]


def provisioner_of(guard: GuardedExecute) -> sandbox.SandboxProvisioner:
    """The provisioner jupyter_client would start guard's kernel with: made from the kernel spec GuardedExecute gives
    nbclient's kernel manager, with parent=that manager, as KernelManager.pre_start_kernel does (no kernel starts)."""
    km = guard.create_kernel_manager()
    return KernelProvisionerFactory.instance().create_provisioner_instance("k", km.kernel_spec, parent=km)


def test_warm_kernels_are_the_default_and_the_provisioner_gets_the_courses_preload_list(course_config, monkeypatch):
    """The provisioner reads c.SandboxProvisioner from the course's config itself: GuardedExecute copies nothing."""
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)  # wiring only: no kernel starts here
    guard = GuardedExecute(config=course_config, kernel_name="python3")
    assert guard.create_kernel_manager().kernel_spec.metadata["kernel_provisioner"] == {
        "provisioner_name": sandbox.PROVISIONER_NAME}
    warm = provisioner_of(guard)
    assert isinstance(warm, sandbox.SandboxProvisioner) and warm.warm is True and warm.memory_limit == 4 * 1024**3
    assert {"fastapi", "sqlalchemy.ext.asyncio", "aiosqlite", "httpx", "jwt"} <= set(warm.preload_modules)
    assert warm.preload_modules == course_config.SandboxProvisioner.preload_modules

    cold_config = Config(course_config)
    cold_config.merge(command_line("--cold-kernels"))
    assert provisioner_of(GuardedExecute(config=cold_config, kernel_name="python3")).warm is False


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


# ---------------------------------------------------------------------------------------------------------------
# Each setting in a course's nbgrader_config.py takes effect, and the command line's alias overrides it. The worker
# processes are stood in for (no kernel): what is checked is what grading hands them and what they load.

class StandInWorker:
    """grading's WorkerProcess, answering at once; records what it was given and how many ran at the same time."""

    started: list["StandInWorker"] = []
    deadlines: list[float] = []
    running = 0
    most = 0
    last_output = ""
    lock = threading.Lock()

    def __init__(self, course_root, setup):
        self.setup, self.dead = setup, False
        StandInWorker.started.append(self)

    def grade(self, job, deadline):
        with StandInWorker.lock:
            StandInWorker.running += 1
            StandInWorker.most = max(StandInWorker.most, StandInWorker.running)
            StandInWorker.deadlines.append(deadline)
        time.sleep(0.05)  # long enough for every worker of the pool to be busy at once
        with StandInWorker.lock:
            StandInWorker.running -= 1
        return WorkerAnswer(job.student)

    def kill(self):
        self.dead = True

    def close(self):
        pass


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course folder with the course's nbgrader_config.py plus `extra` lines, 8 students, no kernel to run."""
    monkeypatch.setattr(grading, "WorkerProcess", StandInWorker)
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)
    StandInWorker.started, StandInWorker.deadlines, StandInWorker.most = [], [], 0
    (tmp_path / "source" / "a").mkdir(parents=True)
    for n in range(8):
        (tmp_path / "submitted" / f"s{n}" / "a").mkdir(parents=True)

    def with_config(*lines):
        text = (COURSE_ROOT / "nbgrader_config.py").read_text() + "\n" + "\n".join(lines) + "\n"
        (tmp_path / "nbgrader_config.py").write_text(text)
        return tmp_path
    return with_config


def worker_app(course, *argv):
    """The nbgrader app a grading worker builds from what `coursekit grade` handed it."""
    StandInWorker.started = []
    assert main(["grade", "a", f"--course={course}", "--no-progress", *argv]) == 0
    return autograde_app(course, StandInWorker.started[0].setup)


def test_grading_jobs_in_nbgrader_config_sets_the_worker_count_and_jobs_overrides_it(course):
    folder = course("c.Grading.jobs = 3")
    assert main(["grade", "a", f"--course={folder}", "--no-progress"]) == 0
    assert len(StandInWorker.started) == 3 and StandInWorker.most == 3
    StandInWorker.started, StandInWorker.most = [], 0
    assert main(["grade", "a", f"--course={folder}", "--no-progress", "--jobs", "2"]) == 0
    assert len(StandInWorker.started) == 2 and StandInWorker.most == 2
    StandInWorker.started = []
    grading.grade_assignment(folder, "a", config=Config({"Grading": {"jobs": 1}}))
    assert len(StandInWorker.started) == 1


def test_the_notebook_deadline_in_nbgrader_config_is_each_submissions_deadline(course):
    folder = course("c.Grading.notebook_deadline = 5")
    (folder / "source" / "a" / "a.ipynb").write_text("{}")
    grading.grade_assignment(folder, "a")
    assert set(StandInWorker.deadlines) == {5 * 1 + 60}


def test_unsafe_no_sandbox_in_nbgrader_config_is_honoured_by_coursekit_grade(course, monkeypatch):
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "bubblewrap (bwrap) is not installed.")
    refused = course()
    assert main(["grade", "a", f"--course={refused}", "--no-progress"]) == 2 and not StandInWorker.started
    folder = course("c.GuardedExecute.unsafe_no_sandbox = True")
    app = worker_app(folder)
    assert len(StandInWorker.started) > 0 and GuardedExecute(parent=app).unsafe_no_sandbox is True
    assert GuardedExecute(parent=worker_app(refused, "--unsafe-no-sandbox")).unsafe_no_sandbox is True


def test_the_cell_timeout_gradebook_and_busy_timeout_reach_the_workers_nbgrader(course, tmp_path):
    folder = course("c.Execute.timeout = 7", f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path}/other.db'",
                    "c.Grading.sqlite_busy_timeout = 9")
    app = worker_app(folder)
    assert GuardedExecute(parent=app).timeout == 7
    assert app.coursedir.db_url == f"sqlite:///{tmp_path}/other.db?timeout=9"
    assert app.coursedir.root == str(folder) and app.coursedir.course_id == "fastapi-async-db"
    app = worker_app(folder, "--timeout", "11", "--db", f"sqlite:///{tmp_path}/third.db")  # the command line wins
    assert GuardedExecute(parent=app).timeout == 11
    assert app.coursedir.db_url == f"sqlite:///{tmp_path}/third.db?timeout=9"
    assert GuardedExecute(parent=worker_app(folder, "--Execute.timeout=12")).timeout == 12  # any trait, nbgrader's way


KERNEL_COMMAND = [sys.executable, "-m", "ipykernel_launcher", "-f", "kernel.json"]


def test_warm_kernels_and_preload_modules_in_nbgrader_config_are_checked_before_grading(course):
    folder = course('c.SandboxProvisioner.preload_modules = ["fastapi", "coursekit_no_such_module", "nosuch.sub"]')
    with pytest.raises(WarmKernelError, match="coursekit_no_such_module, nosuch.sub cannot be imported"):
        grading.grade_assignment(folder, "a")
    assert main(["grade", "a", f"--course={folder}", "--no-progress"]) == 2 and not StandInWorker.started
    # cold kernels preload nothing: grading goes on, and the workers start them cold
    assert provisioner_of(GuardedExecute(parent=worker_app(folder, "--cold-kernels"), kernel_name="python3")).warm is False
    cold = course('c.SandboxProvisioner.preload_modules = ["coursekit_no_such_module"]',
                  "c.SandboxProvisioner.warm = False")
    kernel = provisioner_of(GuardedExecute(parent=worker_app(cold), kernel_name="python3"))
    assert kernel.warm is False and kernel._warm_argv(KERNEL_COMMAND) is None  # started by bubblewrap: cold
    # the other direction: the course's own list, warm, is what the worker's kernels preload
    warm = provisioner_of(GuardedExecute(parent=worker_app(course()), kernel_name="python3"))
    assert warm.warm is True and "fastapi" in warm.preload_modules and "coursekit_no_such_module" not in warm.preload_modules
    if os.geteuid() == 0:  # warm kernels need root; elsewhere they start cold whatever the setting
        assert warm._warm_argv(KERNEL_COMMAND) == ["ipykernel_launcher", "-f", "kernel.json"]


def test_the_memory_limit_in_nbgrader_config_is_the_limit_the_workers_kernels_get(course):
    folder = course("c.SandboxProvisioner.memory_limit = 3 * 1024**3")
    guard = GuardedExecute(parent=worker_app(folder), kernel_name="python3")
    kernel = provisioner_of(guard)
    assert kernel.memory_limit == guard.sandbox_settings().memory_limit == 3 * 1024**3
    assert kernel._limits()["RLIMIT_AS"] == 3 * 1024**3  # what prlimit sets on the sandbox (and the control group)
    unlimited = provisioner_of(GuardedExecute(parent=worker_app(course("c.SandboxProvisioner.memory_limit = 0")),
                                              kernel_name="python3"))
    assert "RLIMIT_AS" not in unlimited._limits()
    default = provisioner_of(GuardedExecute(parent=worker_app(course()), kernel_name="python3"))
    assert default._limits()["RLIMIT_AS"] == 4 * 1024**3


def test_the_system_wide_jupyter_config_applies_and_the_courses_own_wins(course, tmp_path, monkeypatch):
    system = tmp_path / "etc-jupyter"
    system.mkdir()
    (system / "nbgrader_config.py").write_text("c = get_config()\nc.Grading.jobs = 2\nc.Execute.timeout = 3\n")
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(system))  # searched like /etc/jupyter, before it
    folder = course("c.Execute.timeout = 8")
    app = worker_app(folder)
    assert len(StandInWorker.started) == 2  # the system's Grading.jobs
    assert GuardedExecute(parent=app).timeout == 8  # the course's nbgrader_config.py wins


def coursekit_configurables() -> list[type[Configurable]]:
    """Every Configurable class coursekit declares (its settings)."""
    found = []
    for module in pkgutil.iter_modules(coursekit.__path__):
        for value in vars(importlib.import_module(f"coursekit.{module.name}")).values():
            if inspect.isclass(value) and issubclass(value, Configurable) and value.__module__.startswith("coursekit."):
                found.append(value)
    return list(dict.fromkeys(found))


def test_a_setting_has_one_home():
    """The settings coursekit grade's options set are the traits of nbgrader's and coursekit's own classes, and no
    coursekit class declares a setting of the sandbox's again (under its name or a longer one)."""
    assert GradeApp.aliases[("j", "jobs")] == "Grading.jobs"
    assert {GradeApp.aliases[k] for k in ("timeout", "db", "course")} == {
        "Execute.timeout", "CourseDirectory.db_url", "CourseDirectory.root"}
    assert GradeApp.flags["unsafe-no-sandbox"][0] == {"GuardedExecute": {"unsafe_no_sandbox": True}}
    assert GradeApp.flags["cold-kernels"][0] == {"SandboxProvisioner": {"warm": False}}
    own = set(Grading.class_own_traits(config=True))
    assert own == {"jobs", "notebook_deadline", "sqlite_busy_timeout"}

    classes = coursekit_configurables()
    assert {GuardedExecute, sandbox.SandboxProvisioner, Grading, GradeApp} <= set(classes)
    sandbox_settings = set(sandbox.SandboxProvisioner.class_own_traits(config=True))
    assert {"memory_limit", "warm", "preload_modules"} <= sandbox_settings
    copies = {(cls.__name__, name) for cls in classes if cls is not sandbox.SandboxProvisioner
              for name in cls.class_own_traits(config=True) if any(setting in name for setting in sandbox_settings)}
    assert copies == set()
    helps = [trait.help for cls in classes for trait in cls.class_own_traits(config=True).values() if trait.help]
    assert len(helps) == len(set(helps)), "the same setting described twice"


def changed(trait):
    """A value other than the trait's default, of its type (a real module or variable where a list names some)."""
    default = trait.default()
    if isinstance(default, bool):
        return not default
    if isinstance(default, (int, float)):
        return default + (7 if isinstance(default, int) else 7.5)
    if isinstance(default, str):
        return default + " (set in nbgrader_config.py)"
    if isinstance(default, (set, frozenset)):
        return set(default) - {sorted(default)[0]}
    if isinstance(default, list):
        return [*default, "json" if "module" in trait.name else "HOME" if "environment" in trait.name else "s1"]
    raise AssertionError(f"no changed value for {trait.name} ({type(default).__name__}): add one here")


def test_every_setting_coursekit_declares_takes_effect_from_nbgrader_config(course, monkeypatch, tmp_path):
    """Each config trait of every coursekit class, set in the course's nbgrader_config.py, is the value the object
    that uses it has: in the grading worker (preprocessors, the sandbox provisioner the kernel manager makes) or in
    the `coursekit grade` command. A trait no one reads from the config would fail here."""
    monkeypatch.chdir(tmp_path)  # GradeApp.plot and log_file are relative paths
    settings = {cls: {name: changed(trait) for name, trait in cls.class_own_traits(config=True).items()}
                for cls in coursekit_configurables()}
    assert sum(map(len, settings.values())) >= 20  # the settings the README documents, and the course's own
    lines = [f"c.{cls.__name__}.{name} = {value!r}" for cls, values in settings.items() for name, value in values.items()
             if cls is not GradeApp]
    folder = course(*lines)
    app = worker_app(folder)
    guard = GuardedExecute(parent=app, kernel_name="python3")
    kernel_manager = guard.create_kernel_manager()  # unsafe_no_sandbox is set: no provisioner named, config kept
    for cls, values in settings.items():
        if cls is GradeApp:
            continue
        made = sandbox.SandboxProvisioner(parent=kernel_manager) if cls is sandbox.SandboxProvisioner else cls(parent=app)
        for name, value in values.items():
            assert getattr(made, name) == value, f"c.{cls.__name__}.{name} in nbgrader_config.py did not take effect"

    grade_app_lines = [f"c.GradeApp.{name} = {value!r}" for name, value in settings[GradeApp].items()]
    command = GradeApp()
    command.initialize(["a", f"--course={course(*grade_app_lines)}"])
    for name, value in settings[GradeApp].items():
        assert getattr(command, name) == value, f"c.GradeApp.{name} in nbgrader_config.py did not take effect"


def test_the_list_of_coursekit_classes_whose_settings_are_checked_is_whole():
    listed = {name for names in coursekit.config.CONFIGURABLES.values() for name in names}
    assert listed == {cls.__name__ for cls in coursekit_configurables()}
    for module, names in coursekit.config.CONFIGURABLES.items():
        assert all(getattr(importlib.import_module(module), name).__module__ == module for name in names)


def test_a_misspelt_or_moved_setting_stops_grading_with_its_name_and_the_right_one(course, capsys):
    folder = course("c.GuardedExecute.kernel_memory_limit = 2 * 1024**3", "c.Grading.jbos = 2")
    assert main(["grade", "a", f"--course={folder}", "--no-progress"]) == 2 and not StandInWorker.started
    said = capsys.readouterr().err
    assert "c.GuardedExecute.kernel_memory_limit: it is c.SandboxProvisioner.memory_limit now" in said
    assert "c.Grading.jbos (did you mean c.Grading.jobs?)" in said
    with pytest.raises(coursekit.config.UnknownSetting, match="memroy_limit"):  # the API refuses it too
        grading.grade_assignment(course("c.SandboxProvisioner.memroy_limit = 1"), "a")
    # the other direction: the course's own settings, and the right names, grade
    assert main(["grade", "a", f"--course={course('c.SandboxProvisioner.memory_limit = 2 * 1024**3')}",
                 "--no-progress"]) == 0 and StandInWorker.started
