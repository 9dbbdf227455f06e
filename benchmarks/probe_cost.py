"""What the grader's audit hook costs per notebook, against the probes of another revision, side by side in one run.

    .venv/bin/python benchmarks/probe_cost.py [--baseline main] [--students 6] [--rounds 3] [--cold] [ASSIGNMENT]

Checks out `--baseline` (a git revision of this repository) into a temporary folder, and grades two copies of a
course folder with the same submissions (correct ones and ones with a realistic wrong answer) with `--jobs 1`: one
with this working tree's coursekit, one with the baseline's (PYTHONPATH), in rounds that alternate the two, so that
drift in the machine's load is shared. Both use the sandbox and their probes; kernels are warm unless --cold.
A baseline older than b848b70 needs --cold: its warm-kernel template is started by module name (`python -m
coursekit.warm`) in a clean environment, so it would run this tree's module, not the baseline's.

Prints, per revision: seconds per notebook (mean, and median), of which kernel start/stop and running the cells,
CPU seconds per notebook (every process of the grading run, sampled), the ratio to the baseline, and whether every
test cell got the same score in both. Not a test: figures depend on the machine and its load.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from coursekit import testing as subs
from coursekit.testing import make_course_folder
from grade_class import ProcessTreeSampler  # benchmarks/, beside this script

REPOSITORY = Path(__file__).resolve().parents[1]
GRADE = """
import json, sys
from coursekit.grading import grade_assignment
try:  # this tree: settings from config
    from traitlets.config import Config
    results = grade_assignment(sys.argv[1], sys.argv[2], config=Config({"Grading": {"jobs": 1}}))
except TypeError:  # a revision before coursekit grade read its settings from config
    from coursekit.grading import Grading
    results = grade_assignment(sys.argv[1], sys.argv[2], settings=Grading(jobs=1))
print("RESULTS " + json.dumps([[r.student, r.seconds, r.kernel_seconds, r.cells_seconds, r.scores, str(r.problem or "")]
                               for r in results]))
"""


def grade(course: Path, assignment: str, pythonpath: str | None) -> tuple[list, float]:
    """Grade the course in a new process (coursekit from `pythonpath`, or this tree): results, CPU seconds."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    with ProcessTreeSampler(psutil.Process(), include_root=False) as tree:
        run = subprocess.run([sys.executable, "-c", GRADE, str(course), assignment], env=env, capture_output=True,
                             text=True, cwd=course)
    line = next((l for l in run.stdout.splitlines() if l.startswith("RESULTS ")), None)
    if line is None:
        raise RuntimeError(run.stdout[-2000:] + run.stderr[-4000:])
    return json.loads(line[len("RESULTS "):]), tree.cpu_seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="?", default="01-async-database")
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="cold kernels (default: warm)")
    args = parser.parse_args(argv)

    notebooks = subs.half_correct_class(args.assignment, args.students)

    root = Path(tempfile.mkdtemp(prefix="probe-cost-"))
    baseline = root / "baseline-src"
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(baseline), args.baseline],
                   check=True, capture_output=True)
    try:
        revisions = {"baseline": str(baseline), "this tree": None}
        courses = {}
        for name, pythonpath in revisions.items():
            course = make_course_folder(root / name.replace(" ", "-"), [args.assignment])
            if pythonpath:  # grades with the revision's own course config (it imports that revision's coursekit)
                shutil.copy(Path(pythonpath) / "nbgrader_config.py", course / "nbgrader_config.py")
            if args.cold:
                with (course / "nbgrader_config.py").open("a") as file:
                    file.write("\nc.SandboxProvisioner.warm = False\n")
                    if pythonpath:  # a baseline older than 9a505b4 named it GuardedExecute.warm_kernels
                        file.write("c.GuardedExecute.warm_kernels = False\n")
            for student, notebook in notebooks.items():
                subs.write_submission(course, student, args.assignment, notebook)
            courses[name] = course

        seconds = {name: [] for name in revisions}
        kernel = {name: [] for name in revisions}
        cells = {name: [] for name in revisions}
        cpu = {name: 0.0 for name in revisions}
        scores = {name: {} for name in revisions}
        for round_ in range(args.rounds):
            for name, pythonpath in revisions.items():
                results, cpu_seconds = grade(courses[name], args.assignment, pythonpath)
                cpu[name] += cpu_seconds
                for student, total, kernel_s, cells_s, cell_scores, problem in results:
                    seconds[name].append(total)
                    kernel[name].append(kernel_s)
                    cells[name].append(cells_s)
                    scores[name][student] = cell_scores
                    if problem:
                        print(f"  {name} {student}: {problem}", file=sys.stderr)
                print(f"round {round_ + 1}: {name} done", file=sys.stderr)
    finally:
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(baseline)],
                       capture_output=True)

    graded = args.students * args.rounds
    base = statistics.fmean(seconds["baseline"])
    base_cpu = cpu["baseline"] / graded
    print(f"{args.assignment}: {args.students} submissions x {args.rounds} rounds per revision, 1 job, "
          f"{'cold' if args.cold else 'warm'} kernels, baseline {args.baseline}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'revision':10} {'s/notebook':>10} {'median':>7} {'kernel':>7} {'cells':>7} {'CPU s':>7} {'wall ratio':>10} "
          f"{'CPU ratio':>9}")
    for name in revisions:
        mean = statistics.fmean(seconds[name])
        per_cpu = cpu[name] / graded
        print(f"{name:10} {mean:10.2f} {statistics.median(seconds[name]):7.2f} {statistics.fmean(kernel[name]):7.2f} "
              f"{statistics.fmean(cells[name]):7.2f} "
              f"{per_cpu:7.2f} {mean / base:10.3f} {per_cpu / base_cpu:9.3f}")
    same = scores["baseline"] == scores["this tree"]
    print(f"Same score in both for every test cell ({sum(len(s) for s in scores['this tree'].values())} cells): "
          f"{'yes' if same else 'NO'}")
    for student in sorted(scores["this tree"]):
        for cell, score in scores["this tree"][student].items():
            if scores["baseline"].get(student, {}).get(cell) != score:
                print(f"  {student} {cell}: baseline {scores['baseline'].get(student, {}).get(cell)}, this tree {score}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
