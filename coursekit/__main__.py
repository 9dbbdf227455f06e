"""Command line: `python -m coursekit COMMAND`. Run with --help for the list."""
import argparse
import sys
import time
from pathlib import Path

from . import COURSE_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build_cmd = commands.add_parser("build", help="regenerate release/ and solutions/ from source/")
    build_cmd.add_argument("assignments", nargs="*", help="only these assignments (default: all)")

    grade_cmd = commands.add_parser(
        "grade", help="autograde every submission of an assignment, in parallel, and report on the class",
        description="Autograde submitted/*/ASSIGNMENT/ with nbgrader in parallel worker processes, into the "
                    "course's gradebook, then print per-exercise means and failures, plot the score distribution "
                    "and list the submissions that timed out, crashed or were malformed. Exit code 1 when any "
                    "submission needs attention.")
    grade_cmd.add_argument("assignment")
    grade_cmd.add_argument("--course", type=Path, default=COURSE_ROOT, help="course folder (default: this repo)")
    grade_cmd.add_argument("--jobs", "-j", type=int, default=None,
                           help="parallel graders (default: all cores)")
    grade_cmd.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    grade_cmd.add_argument("--db", default=None, metavar="URL",
                           help="gradebook URL, e.g. postgresql://user@host/course (default: nbgrader_config.py's "
                                "CourseDirectory.db_url, normally sqlite:///<course>/gradebook.db)")
    grade_cmd.add_argument("--student", action="append", dest="students", metavar="ID",
                           help="grade only this student (repeatable; default: everyone in submitted/)")
    grade_cmd.add_argument("--plot", type=Path, default=None,
                           help="where to save the score distribution (default: <course>/reports/<assignment>-scores.png)")
    grade_cmd.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade_cmd.add_argument("--dask", default=None, metavar="ADDRESS",
                           help="grade on a Dask cluster: its scheduler's address (tcp://host:8786), or local:N to "
                                "start N local workers; a remote cluster needs a PostgreSQL gradebook (--db postgresql+psycopg://...)")

    copy_cmd = commands.add_parser(
        "student-copy", help="export what students receive into a folder (the public student repository)",
        description="Write the release notebooks, the start page, the environment files, a student README with "
                    "the Binder links and a student nbgrader_config.py into DEST. Refuses when anything of "
                    "source/'s solutions or hidden tests would reach it.")
    copy_cmd.add_argument("dest", type=Path)
    copy_cmd.add_argument("--repo", default="OWNER/REPO", help="the student repository on GitHub, for Binder links")
    copy_cmd.add_argument("--branch", default="main", help="its branch (default: main)")
    copy_cmd.add_argument("--course", type=Path, default=COURSE_ROOT, help="course folder (default: this repo)")

    args = parser.parse_args(argv)
    if args.command == "build":
        from .build import build
        for assignment in build(only=args.assignments or None):
            print(f"built release/{assignment}/ and solutions/{assignment}/")
        return 0
    if args.command == "grade":
        return grade(args)
    if args.command == "student-copy":
        from .student_copy import export_student_copy
        written = export_student_copy(args.dest, repo=args.repo, branch=args.branch, course_root=args.course)
        print(f"student copy written to {args.dest} ({len(written)} files); push it as the public repository")
        return 0
    return 2


def grade(args) -> int:
    from .grading import ProgressBar, available_cores, exercises_of, format_summary, grade_assignment, plot_scores

    course = args.course.resolve()
    if not (course / "source" / args.assignment).is_dir():
        print(f"no such assignment: {course / 'source' / args.assignment}", file=sys.stderr)
        return 2
    jobs = args.jobs or available_cores()
    started = time.monotonic()
    try:
        results = grade_assignment(course, args.assignment, students=args.students, jobs=jobs,
                                   cell_timeout=args.timeout, db_url=args.db,
                                   progress=None if args.no_progress else ProgressBar(), dask=args.dask)
    except Exception as error:
        from .cluster import ClusterError  # the cluster cannot grade this class (EnvironmentMismatch, ...)
        if isinstance(error, ClusterError):
            print(f"coursekit grade --dask: {error}", file=sys.stderr)
            return 2
        raise
    seconds = time.monotonic() - started
    if not results:
        print(f"nothing to grade: no folder submitted/*/{args.assignment}/ in {course}", file=sys.stderr)
        return 1
    plot = plot_scores(results, args.plot or course / "reports" / f"{args.assignment}-scores.png", args.assignment)
    print(format_summary(args.assignment, results, exercises_of(course, args.assignment), seconds=seconds,
                         jobs=None if args.dask else min(jobs, len(results)), plot=plot))
    return 0 if all(r.problem is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
