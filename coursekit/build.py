"""Rebuild release/ (student notebooks) and solutions/ (executed solution notebooks) from source/.

release/ and solutions/ are generated: never edit them by hand, run `python -m coursekit build`.
"""
import tempfile
from pathlib import Path

from . import assignments
from .nbgrader_cli import nbgrader

# nbclient's own skip tag, which no course cell carries: every cell runs.
RUN_EVERY_CELL = "--Execute.skip_cells_with_tag=skip-execution"
# No execution timestamps in the cells' metadata: they differ from run to run and teach nothing.
NO_TIMESTAMPS = "--Execute.record_timing=False"


def build(course_root: Path, only: list[str] | None = None) -> list[str]:
    """Generate release/<a>/ and solutions/<a>/ for each assignment (all, or those in `only`).

    A throwaway gradebook is used, so the result depends on source/ alone, not on a local gradebook.db.
    Returns the assignments built.
    """
    course_root = Path(course_root)
    todo = only or assignments(course_root)
    with tempfile.TemporaryDirectory(prefix="coursekit-build-") as scratch:
        db = f"--CourseDirectory.db_url=sqlite:///{scratch}/gradebook.db"
        for assignment in todo:
            if not (course_root / "source" / assignment).is_dir():
                raise FileNotFoundError(f"no such assignment: source/{assignment}/")
            nbgrader(course_root, "generate_assignment", assignment, "--force", db)
            # Grading skips the demo cells (nbgrader_config.py); the solutions show them run, plots included.
            nbgrader(course_root, "generate_solution", assignment, "--force", db, RUN_EVERY_CELL, NO_TIMESTAMPS)
    return todo

