"""Command line: `python -m coursekit COMMAND`. Run with --help for the list."""
import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", type=Path, default=Path.cwd(),
                        help="the course folder, with source/ and nbgrader_config.py (default: the working directory)")

    build_cmd = commands.add_parser("build", parents=[course], help="regenerate release/ and solutions/ from source/")
    build_cmd.add_argument("assignments", nargs="*", help="only these assignments (default: all)")

    # `grade` is a traitlets application (coursekit.gradeapp); listed here for --help only.
    commands.add_parser("grade", add_help=False,
                        help="autograde every submission of an assignment, in parallel, and report on the class "
                             "(`grade --help` lists its options)")

    copy_cmd = commands.add_parser(
        "student-copy", parents=[course],
        help="export what students receive into a folder (the public student repository)",
        description="Write the release notebooks, the start page, the environment files, a student README with "
                    "the Binder links and a student nbgrader_config.py into DEST. Refuses when anything of "
                    "source/'s solutions or hidden tests would reach it.")
    copy_cmd.add_argument("dest", type=Path)
    copy_cmd.add_argument("--repo", default="OWNER/REPO", help="the student repository on GitHub, for Binder links")
    copy_cmd.add_argument("--branch", default="main", help="its branch (default: main)")

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:
        from .gradeapp import main as grade
        return grade(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "build":
        from .build import build
        for assignment in build(args.course, only=args.assignments or None):
            print(f"built release/{assignment}/ and solutions/{assignment}/")
        return 0
    if args.command == "student-copy":
        from .student_copy import export_student_copy
        written = export_student_copy(args.dest, args.course, repo=args.repo, branch=args.branch)
        print(f"student copy written to {args.dest} ({len(written)} files); push it as the public repository")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
