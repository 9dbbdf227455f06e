"""The course's configuration, loaded the one way nbgrader loads it: every process of coursekit calls `course_config`.

`nbgrader autograde`, run in a course folder, reads `jupyter_config.py` and `nbgrader_config.py` from every Jupyter
config path (the user's ~/.jupyter, the environment's etc/jupyter, the system-wide /usr/local/etc/jupyter and
/etc/jupyter, JUPYTER_CONFIG_PATH), then the course's own `nbgrader_config.py`, which wins
(`nbgrader.apps.baseapp.NbGrader.load_config_file`). `course_config` runs nbgrader's own loader for that, without
changing the working folder (a Dask worker runs tasks in threads), once per process until a file changes: the
`coursekit grade` driver, each grading worker process and each Dask worker see the same settings, the command
line's (`overrides`) on top.
"""
import copy
import os
from pathlib import Path

from traitlets.config import Application, Config

FILES = ("jupyter_config.py", "nbgrader_config.py")
_loaded: dict[tuple, Config] = {}


def course_config(course_root, overrides: Config | None = None) -> Config:
    """nbgrader's configuration for the course in `course_root`, with `overrides` (a command line's) on top.

    CourseDirectory.root is the course folder (nbgrader's default is the working folder)."""
    root = os.path.realpath(course_root)
    key = _files_key(root)
    if key not in _loaded:
        _loaded[key] = _load(root)
    config = copy.deepcopy(_loaded[key])
    config.CourseDirectory.root = str(Path(root))
    if overrides:
        config.merge(overrides)
    return config


def _files_key(root: str) -> tuple:
    """The files nbgrader would read for this course, and their versions: loaded again when one changes."""
    from jupyter_core.paths import jupyter_config_path

    paths = [os.path.join(folder, name) for folder in jupyter_config_path() for name in FILES]
    paths.append(os.path.join(root, "nbgrader_config.py"))
    key = [root]
    for path in paths:
        try:
            status = os.stat(path)
            key.append((path, status.st_mtime_ns, status.st_size))
        except OSError:
            key.append((path, None))
    return tuple(key)


def _load(root: str) -> Config:
    from jupyter_core.application import JupyterApp
    from nbgrader.apps.baseapp import NbGrader

    # nbgrader's own loader: the Jupyter config paths, then the course's nbgrader_config.py (not the working
    # folder's, as NbGrader.load_config_file would add: the course folder is given). A file that fails to load
    # stops here, with its error, rather than grading with part of the course's settings.
    app = NbGrader(raise_config_file_errors=True)
    JupyterApp.load_config_file(app)
    Application.load_config_file(app, app.config_file_name, path=root)
    return app.config


class UnknownSetting(ValueError):
    """The configuration sets something no coursekit class has: a misspelt or renamed setting, which traitlets would
    otherwise ignore with a line in the log while grading went on without it."""


# coursekit's configurable classes, by module (tests/test_settings.py checks the list is whole).
CONFIGURABLES = {
    "coursekit.jobs": ["Grading"],
    "coursekit.gradeapp": ["GradeApp"],
    "coursekit.preprocessors": ["GuardedExecute", "DeduplicateCells", "KeepCourseSkipTags", "HideHiddenTestTracebacks"],
    "coursekit.sandbox": ["SandboxProvisioner"],
    "coursekit.restore_cells": ["RestoreMissingCells"],
    "coursekit.foreign_cells": ["ForgetForeignCells"],
    "coursekit.review": ["ReviewStudentCode"],
    "coursekit.scrub": ["ScrubHiddenTestText"],
    "coursekit.sanitize": ["SanitizeStudentHTML", "SanitizedMarkdown2HTML"],
    "coursekit.submission_files": ["CheckSubmittedFiles", "CarryNbgraderFiles"],
    "coursekit.grade_worker": ["CourseAutograde"],
    "coursekit.integrity": ["GraderClient"],
}
# Settings that moved, and where to: named in the error rather than guessed.
MOVED = {
    "GuardedExecute.kernel_memory_limit": "SandboxProvisioner.memory_limit",
    "GuardedExecute.warm_kernels": "SandboxProvisioner.warm",
    "GuardedExecute.preload_modules": "SandboxProvisioner.preload_modules",
}


def check_known_settings(config: Config) -> None:
    """UnknownSetting naming each `c.Class.name` of a coursekit class in `config` that the class does not have."""
    import difflib
    import importlib

    unknown = []
    for module, names in CONFIGURABLES.items():
        for name in names:
            section = config.get(name)
            if not section:
                continue
            traits = getattr(importlib.import_module(module), name).class_traits(config=True)
            for key, value in section.items():
                if key in traits or isinstance(value, Config):  # a Config: a nested section, not a setting
                    continue
                moved = MOVED.get(f"{name}.{key}")
                close = difflib.get_close_matches(key, traits, n=1)
                hint = (f": it is c.{moved} now" if moved else f" (did you mean c.{name}.{close[0]}?)" if close
                        else "")
                unknown.append(f"c.{name}.{key}{hint}")
    if unknown:
        raise UnknownSetting("Grading refused: the configuration sets what no coursekit class has, so it would be "
                             "ignored: " + "; ".join(unknown))
