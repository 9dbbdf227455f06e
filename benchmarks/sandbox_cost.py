"""What the grading sandbox and the integrity probes cost per notebook, measured side by side in one run.

    .venv/bin/python benchmarks/sandbox_cost.py [--students 6] [--rounds 2] [--starts 40] [--warm] [ASSIGNMENT]

Builds a copy of a course folder per setting with the same submissions (correct ones and ones with a realistic wrong
answer, from coursekit.submissions) and grades them with `coursekit grade --jobs 1` (cold kernels; --warm: warm ones
where there is a sandbox), in rounds that alternate the settings, so that drift in the machine's load is shared:

- unprotected:  no sandbox, no probes (the grader before issue 11: --unsafe-no-sandbox, check_integrity=False);
- sandbox:      the bubblewrap sandbox, no probes;
- protected:    the sandbox and the integrity probes around every test cell (the default);
- no-cgroup:    the same without the kernel's control group (c.SandboxProvisioner.control_group = False), to show
                what the control group costs (as root; elsewhere there is none in either).

Then, as a closer look at what starting a sandbox costs, `--starts` sandboxes that run `true`, alternating: the
working folder as before issue 19 (a private copy of the notebook's folder on the host's disk, bound in), as now
(an empty tmpfs), and as now with a control group (created, joined, removed).

Prints, per setting: seconds per notebook (mean over every graded notebook), of which kernel start/stop and
running the cells, CPU seconds per notebook (the grading processes, bubblewrap and the kernels, sampled), the ratio
to the unprotected run (or to the first of --only), and whether every test cell got the same score in every setting.
Not a test: figures depend on the machine and its load.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from traitlets.config import Config

from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.testing import make_course_folder
from grade_class import ProcessTreeSampler  # benchmarks/, beside this script

# Cold kernels in all four: this measures what protection costs; benchmarks/grade_class.py measures warm kernels.
COLD = "c.SandboxProvisioner.warm = False\n"
SETTINGS = {
    "unprotected": COLD + "c.GuardedExecute.unsafe_no_sandbox = True\nc.GuardedExecute.check_integrity = False\n",
    "sandbox": COLD + "c.GuardedExecute.check_integrity = False\n",
    "protected": COLD,
    "no-cgroup": COLD + "c.SandboxProvisioner.control_group = False\n",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="?", default="01-async-database")
    parser.add_argument("--students", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--starts", type=int, default=40, help="sandbox starts per way (0: none)")
    parser.add_argument("--warm", action="store_true", help="warm kernels where there is a sandbox (the default of "
                                                            "grading); unprotected kernels are cold all the same")
    parser.add_argument("--only", help="comma-separated settings to run (the first is the base of the ratios)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SETTINGS)
    settings = {name: SETTINGS[name].replace(COLD, "") if args.warm else SETTINGS[name] for name in chosen}

    notebooks = subs.half_correct_class(args.assignment, args.students)

    root = Path(tempfile.mkdtemp(prefix="sandbox-cost-"))
    courses = {}
    for name, config in settings.items():
        course = make_course_folder(root / name, [args.assignment])
        with (course / "nbgrader_config.py").open("a") as file:
            file.write("\n# benchmarks/sandbox_cost.py\n" + config)
        for student, notebook in notebooks.items():
            subs.write_submission(course, student, args.assignment, notebook)
        courses[name] = course

    seconds = {name: [] for name in settings}
    kernel = {name: [] for name in settings}
    cells = {name: [] for name in settings}
    cpu = {name: 0.0 for name in settings}
    scores = {name: {} for name in settings}
    for round_ in range(args.rounds):
        for name, course in courses.items():
            # CPU of the workers, bubblewrap and kernels, sampled: getrusage(RUSAGE_CHILDREN) would miss the
            # sandboxed kernels (bubblewrap's init is killed, not waited for).
            with ProcessTreeSampler(psutil.Process(), include_root=False) as tree:
                results = grade_assignment(course, args.assignment,
                                           config=Config({"Grading": {"jobs": 1}, "GuardedExecute": {"unsafe_no_sandbox": name == "unprotected"}}))
            cpu[name] += tree.cpu_seconds
            for result in results:
                seconds[name].append(result.seconds)
                kernel[name].append(result.kernel_seconds)
                cells[name].append(result.cells_seconds)
                scores[name][result.student] = result.scores
                if result.problem:
                    print(f"  {name} {result.student}: {result.problem}", file=sys.stderr)
            print(f"round {round_ + 1}: {name} done", file=sys.stderr)

    graded = args.students * args.rounds
    base = statistics.fmean(seconds[chosen[0]])
    base_cpu = cpu[chosen[0]] / graded
    print(f"{args.assignment}: {args.students} submissions x {args.rounds} rounds per setting, 1 job, "
          f"{'warm' if args.warm else 'cold'} kernels, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'setting':12} {'s/notebook':>10} {'kernel':>7} {'cells':>7} {'CPU s':>7} {'wall ratio':>10} {'CPU ratio':>9}")
    for name in settings:
        mean = statistics.fmean(seconds[name])
        per_cpu = cpu[name] / graded
        print(f"{name:12} {mean:10.2f} {statistics.fmean(kernel[name]):7.2f} {statistics.fmean(cells[name]):7.2f} "
              f"{per_cpu:7.2f} {mean / base:10.3f} {per_cpu / base_cpu:9.3f}")
    same = all(scores[name] == scores[chosen[0]] for name in settings)
    cells_total = sum(len(s) for s in scores[chosen[0]].values())
    print(f"Same score in all settings for every test cell ({cells_total} cells): {'yes' if same else 'NO'}")
    if args.starts:
        sandbox_starts(courses[chosen[0]] / "submitted" / "student-00" / args.assignment, args.starts)
    return 0 if same else 1


def sandbox_starts(notebook_folder: Path, starts: int) -> None:
    """Milliseconds to start and end a sandbox that runs `true`, three ways (see the module's docstring)."""
    import shutil
    import subprocess

    from coursekit import bubblewrap, cgroup
    folder = str(notebook_folder.resolve())
    size = 512 * 1024**2
    limits = bubblewrap.resource_limits(4 * 1024**3, 1024, 1024**3)

    def copied():
        private = Path(tempfile.mkdtemp(prefix="sandbox-cost-copy-"))
        shutil.copytree(folder, private / "work", symlinks=True)
        subprocess.run(bubblewrap.limited(bubblewrap.sandbox_command(["true"], binds=[(str(private / "work"), folder)],
                                                               cwd=folder), limits), check=True)
        shutil.rmtree(private)

    def tmpfs():
        subprocess.run(bubblewrap.limited(bubblewrap.sandbox_command(["true"], binds=[], cwd=folder, work_size=size),
                                       limits), check=True)

    def tmpfs_and_cgroup():
        group = cgroup.KernelGroup.create(4 * 1024**3, 1024)
        subprocess.run(group.joined(bubblewrap.limited(bubblewrap.sandbox_command(["true"], binds=[], cwd=folder,
                                                                            work_size=size), limits)), check=True)
        group.remove()

    ways = {"copied folder (before)": copied, "tmpfs": tmpfs}
    hierarchy, reason = cgroup.available()
    if hierarchy is not None:
        ways["tmpfs + cgroup"] = tmpfs_and_cgroup
    else:
        print(f"(no control group here: {reason})")
    times = {name: [] for name in ways}
    for _ in range(starts):
        for name, start in ways.items():
            began = time.perf_counter()
            start()
            times[name].append(time.perf_counter() - began)
    folder_bytes = sum(f.stat().st_size for f in notebook_folder.rglob("*") if f.is_file())
    print(f"Starting and ending a sandbox that runs `true` ({starts} times each, alternating; "
          f"the notebook folder holds {folder_bytes // 1024} KiB):")
    for name, values in times.items():
        median, mean = statistics.median(values) * 1000, statistics.fmean(values) * 1000
        print(f"  {name:24} median {median:6.1f} ms, mean {mean:6.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
