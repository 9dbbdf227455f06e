"""Command line: `python -m coursekit COMMAND`. Run with --help for the list."""
import argparse
import sys
from pathlib import Path

from . import COURSE_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build_cmd = commands.add_parser("build", help="regenerate release/ and solutions/ from source/")
    build_cmd.add_argument("assignments", nargs="*", help="only these assignments (default: all)")

    grade_cmd = commands.add_parser("grade", help="autograde every submission of an assignment")
    grade_cmd.add_argument("assignment")
    grade_cmd.add_argument("--course", type=Path, default=COURSE_ROOT, help="course folder (default: this repo)")
    grade_cmd.add_argument("--jobs", type=int, default=None, help="parallel graders (default: all cores)")
    grade_cmd.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")

    args = parser.parse_args(argv)
    if args.command == "build":
        from .build import build
        for assignment in build(only=args.assignments or None):
            print(f"built release/{assignment}/ and solutions/{assignment}/")
        return 0
    if args.command == "grade":
        from .grading import grade_assignment, print_summary
        results = grade_assignment(args.course, args.assignment, jobs=args.jobs, cell_timeout=args.timeout)
        print_summary(results)
        return 0 if all(r.problem is None for r in results) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
