"""What the static review, the carried-in files check and the hidden-test scrub cost per notebook, in CPU time.

    .venv/bin/python benchmarks/review_cost.py [--repeat 20]

Runs the three preprocessors the way autograde does (ReviewStudentCode and CheckSubmittedFiles in the sanitize
pass, ScrubHiddenTestText after the cells ran) on each assignment's executed solution notebook (solutions/, with its
outputs and its master's hidden tests put back as the gradebook does), in a course folder made for the run, and
prints the median milliseconds per notebook of each, next to the 4-5 s a notebook takes to grade (README, *Warm
kernels*). Not a test: figures depend on the machine and its load.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from traitlets.config import Config

from coursekit import assignments
from coursekit import testing as subs
from coursekit.review import ReviewStudentCode
from coursekit.scrub import ScrubHiddenTestText
from coursekit.submission_files import CheckSubmittedFiles


def graded_like(assignment: str) -> nbformat.NotebookNode:
    """The executed solution, its test cells holding the master's hidden tests (as autograde's notebook does)."""
    solution = nbformat.read(subs.COURSE_ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    master = nbformat.read(subs.COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    sources = {subs.cells.grade_id(c): c.source for c in master.cells if subs.cells.grade_id(c)}
    for cell in solution.cells:
        if subs.is_test(cell):
            cell.source = sources[subs.cells.grade_id(cell)]
    return solution


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp)
        config = Config()
        config.CourseDirectory.root = str(course)
        print(f"{'assignment':26} {'review':>9} {'files':>9} {'scrub':>9}  (ms per notebook, median of {args.repeat})")
        for assignment in assignments(subs.COURSE_ROOT):
            (course / "source" / assignment).mkdir(parents=True)
            (course / "source" / assignment / f"{assignment}.ipynb").write_bytes(
                (subs.COURSE_ROOT / "source" / assignment / f"{assignment}.ipynb").read_bytes())
            subs.write_submission(course, "student", assignment, subs.correct_submission(assignment))
            submitted = nbformat.from_dict(subs.correct_submission(assignment))  # what the sanitize pass reads
            graded = graded_like(assignment)  # what the scrub reads, after the cells ran
            resources = {"nbgrader": {"student": "student", "assignment": assignment, "notebook": assignment}}
            times = {}
            for name, preprocessor, notebook in [("review", ReviewStudentCode(config=config), submitted),
                                                 ("files", CheckSubmittedFiles(config=config), submitted),
                                                 ("scrub", ScrubHiddenTestText(config=config), graded)]:
                runs = []
                for _ in range(args.repeat):
                    copy = nbformat.from_dict(notebook)
                    started = time.process_time()
                    preprocessor.preprocess(copy, {**resources})  # its own records list, dropped after
                    runs.append(time.process_time() - started)
                times[name] = statistics.median(runs) * 1000
            print(f"{assignment:26} {times['review']:9.1f} {times['files']:9.1f} {times['scrub']:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
