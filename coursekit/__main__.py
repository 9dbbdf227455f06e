"""Command line: `python -m coursekit COMMAND`. Run with --help for the list."""
import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", type=Path, default=Path.cwd(),
                        help="the course folder, with source/ and nbgrader_config.py (default: the working directory)")

    build_cmd = commands.add_parser("build", parents=[course], help="regenerate release/ and solutions/ from source/")
    build_cmd.add_argument("assignments", nargs="*", help="only these assignments (default: all)")

    grade_cmd = commands.add_parser(
        "grade", parents=[course],
        help="autograde every submission of an assignment, in parallel, and report on the class",
        description="Autograde submitted/*/ASSIGNMENT/ with nbgrader in parallel worker processes, into the "
                    "course's gradebook, then print per-exercise means and failures, plot the score distribution "
                    "and list the submissions that timed out, crashed or were malformed. Exit code 1 when any "
                    "submission needs attention.")
    grade_cmd.add_argument("assignment")
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
    grade_cmd.add_argument("--unsafe-no-sandbox", action="store_true",
                           help="DANGER: run students' code without the bubblewrap sandbox, with your rights (it can "
                                "then change grades and other students' files). Only where no sandbox can run, for "
                                "work you trust.")

    grade_cmd.add_argument("--cold-kernels", action="store_true",
                           help="start every kernel as a new Python process instead of a fork of one that has "
                                "already imported the course's modules (slower; for comparison)")

    copy_cmd = commands.add_parser(
        "student-copy", parents=[course],
        help="export what students receive into a folder (the public student repository)",
        description="Write the release notebooks, the start page, the environment files, a student README with "
                    "the Binder links and a student nbgrader_config.py into DEST. Refuses when anything of "
                    "source/'s solutions or hidden tests would reach it.")
    copy_cmd.add_argument("dest", type=Path)
    copy_cmd.add_argument("--repo", default="OWNER/REPO", help="the student repository on GitHub, for Binder links")
    copy_cmd.add_argument("--branch", default="main", help="its branch (default: main)")

    args = parser.parse_args(argv)
    if args.command == "build":
        from .build import build
        for assignment in build(args.course, only=args.assignments or None):
            print(f"built release/{assignment}/ and solutions/{assignment}/")
        return 0
    if args.command == "grade":
        return grade(args)
    if args.command == "student-copy":
        from .student_copy import export_student_copy
        written = export_student_copy(args.dest, args.course, repo=args.repo, branch=args.branch)
        print(f"student copy written to {args.dest} ({len(written)} files); push it as the public repository")
        return 0
    return 2


def grade(args) -> int:
    from .grading import Grading, grade_assignment
    from .report import Progress, exercises_of, format_summary, plot_scores
    from .sandbox import SandboxUnavailable
    from .warm import WarmKernelError

    course = args.course.resolve()
    if not (course / "source" / args.assignment).is_dir():
        print(f"no such assignment: {course / 'source' / args.assignment}", file=sys.stderr)
        return 2
    settings = Grading(cell_timeout=args.timeout, db_url=args.db, unsafe_no_sandbox=args.unsafe_no_sandbox,
                       warm_kernels=not args.cold_kernels)
    if args.jobs:
        settings.jobs = args.jobs
    started = time.monotonic()
    try:
        results = grade_assignment(course, args.assignment, students=args.students, settings=settings,
                                   progress=None if args.no_progress else Progress(), dask=args.dask)
    except (SandboxUnavailable, WarmKernelError) as refusal:
        print(refusal, file=sys.stderr)
        return 2
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
                         jobs=None if args.dask else settings.workers_for(len(results)), plot=plot))
    return 0 if all(r.problem is None and not r.reviews for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
