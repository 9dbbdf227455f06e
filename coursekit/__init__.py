"""The course's own tooling: build the generated folders, grade a class, export the student copy.

Each command of `python -m coursekit` is a plain function here, so tests call the same code instructors run.
"""
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent.parent


def assignments(course_root: Path = COURSE_ROOT) -> list[str]:
    """The assignments of the course, in teaching order (the folder names under source/)."""
    return sorted(p.name for p in (course_root / "source").iterdir() if p.is_dir() and not p.name.startswith("."))
