"""Run nbgrader commands in a course folder, with the Python of this environment."""
import os
import subprocess
import sys
from pathlib import Path

# nbgrader runs `alembic` (and kernels run `python`) by name: put this environment's bin/ first on PATH,
# so the commands work even when the virtual environment was not activated.
ENV_WITH_VENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def nbgrader(course_root: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `nbgrader ARGS` with course_root as working folder (so its nbgrader_config.py applies).

    Returns the finished process (output captured as text); raises NbgraderFailed if nbgrader exits non-zero.
    """
    process = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course_root, env=ENV_WITH_VENV, capture_output=True, text=True, timeout=timeout,
    )
    if process.returncode != 0:
        raise NbgraderFailed(args, process)
    return process


class NbgraderFailed(RuntimeError):
    def __init__(self, args, process: subprocess.CompletedProcess):
        self.process = process
        super().__init__(f"nbgrader {' '.join(args)} exited with {process.returncode}:\n{process.stderr[-3000:]}")
