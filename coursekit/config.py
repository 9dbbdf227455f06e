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
