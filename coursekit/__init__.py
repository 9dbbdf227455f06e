"""The course's own tooling: build the generated folders, grade a class, export the student copy.

Each command of `python -m coursekit` is a plain function here, so tests call the same code instructors run.
Every function takes the course folder it works on; the command line's is `--course`, or the working directory.
"""
from pathlib import Path


def assignments(course_root: Path) -> list[str]:
    """The assignments of the course, in teaching order (the folder names under source/)."""
    return sorted(p.name for p in (Path(course_root) / "source").iterdir() if p.is_dir() and not p.name.startswith("."))
