"""How long one capstone submission takes to grade: its endpoints' tests and the mutation analysis of the student's
own suite (reference app twice, 13 mutants), in the grading sandbox on a warm kernel, as `coursekit grade` does it.

    .venv/bin/python benchmarks/capstone_grading.py [--rounds 2] [--jobs 1] [--budget 30]

Grades, --rounds times, four submissions made from the course's own answers: the solution (its suite kills every
mutant), a strong suite written another way (tests/right_answers), a happy-path-only suite and a suite that fails on
the reference (tests/wrong_answers). With --jobs 1 they are graded one at a time, so each figure is what one
submission costs with the machine's other core free for whatever else runs; --jobs 2 grades two at once on 2 cores.
Prints, per submission, the wall time of grading it (nbgrader's conversion, kernel start/stop, cells) and the kernel
CPU split, and the load average (wall times taken while other work keeps the cores busy are not comparable).
Exits 1 if the median submission is over --budget seconds (the course's aim: under 30 s on 2 cores).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment

ASSIGNMENT = "04-capstone"


def submissions() -> dict[str, dict]:
    correct = subs.correct_submission(ASSIGNMENT)
    answers = subs.solution_answers(ASSIGNMENT)
    right = subs.right_answers(ASSIGNMENT)["my_tests"]
    wrong = subs.wrong_answers(ASSIGNMENT)["my_tests"]
    return {
        "solution": correct,
        "strong-suite": subs.with_answers(correct, {**answers, "my_tests": next(iter(right.values()))}),
        "happy-path-suite": subs.with_answers(correct, {**answers, "my_tests": list(wrong.values())[0]}),
        "fails-on-reference": subs.with_answers(correct, {**answers, "my_tests": list(wrong.values())[1]}),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per submission (median)")
    args = parser.parse_args(argv)

    seconds, lines = [], []
    with tempfile.TemporaryDirectory(prefix="capstone-bench-") as folder:
        course = subs.make_course_folder(Path(folder), [ASSIGNMENT])
        class_ = {f"{name}-{round_}": nb for round_ in range(args.rounds) for name, nb in submissions().items()}
        subs.write_class(course, ASSIGNMENT, class_)
        load_before = os.getloadavg()
        started = time.perf_counter()
        results = grade_assignment(course, ASSIGNMENT, config=Config({"Grading": {"jobs": args.jobs}}))
        wall = time.perf_counter() - started
        load_after = os.getloadavg()
    for result in sorted(results, key=lambda r: r.student):
        timing = result.timings[0] if result.timings else None
        seconds.append(result.seconds)
        split = f"kernel {timing.kernel_seconds:4.1f} s, cells {timing.cells_seconds:4.1f} s" if timing else "no timing"
        lines.append(f"  {result.student:<22} {result.seconds:5.1f} s ({split})  "
                     f"score {sum(result.scores.values()):4.1f}/{sum(result.max_scores.values()):.0f}"
                     + (f"  PROBLEM {result.problem}" if result.problem else ""))
    print(f"{len(results)} capstone submissions, --jobs {args.jobs}: {wall:.1f} s in all, "
          f"{60 * len(results) / wall:.1f} submissions/min; load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print("\n".join(lines))
    median = statistics.median(seconds)
    print(f"per submission: median {median:.1f} s, max {max(seconds):.1f} s (budget {args.budget:.0f} s)")
    return 0 if median <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
