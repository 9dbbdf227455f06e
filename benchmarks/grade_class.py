"""Grade a synthetic class with nbgrader's own serial `nbgrader autograde` and with `coursekit grade`, and compare.

    .venv/bin/python benchmarks/grade_class.py [--students 100] [--jobs N] [--seed 1] [ASSIGNMENT ...]

Builds a course folder with every assignment (default: all three) and a class of --students students who each
hand in every notebook, made from the course's own notebooks and realistic answers (coursekit.submissions):
about 45 % correct, 40 % with one realistic wrong answer (tests/wrong_answers/), 10 % with two, 5 % blank
(coursekit.testing).
Copies of that folder are graded in the same run, one after the other, each in one of these ways:

- plain cold:      `nbgrader autograde ASSIGNMENT --force --SandboxProvisioner.warm=False`, as nbgrader grades
                   without coursekit's warm kernels (one process, students one after another, a new Python per kernel);
- plain warm:      `nbgrader autograde ASSIGNMENT --force` with the course's config (warm kernels, coursekit.warm);
- coursekit cold:  coursekit.grading.grade_assignment(..., jobs=N, SandboxProvisioner.warm=False) (N worker processes);
- coursekit warm:  coursekit.grading.grade_assignment(..., jobs=N), the default of `coursekit grade`.

--runs "coursekit cold,coursekit warm" picks some of them (default: all four). Prints, for each: wall time, submissions per minute, peak memory (of the grading processes, their
template processes and kernels, sampled every 0.2 s: summed PSS, which counts a page shared by forks once, and the
summed resident sizes, which count it in every process), and
per notebook the time split into kernel start/stop, running the cells, and the rest (nbgrader itself, the
gradebook, process start), and the CPU time per submission (all processes, kernels included: comparable even when
other work shares the machine). Then each run's speed-up over plain cold, whether every run wrote the same score
for every test cell, and how often "database is locked" appeared. Not a test: it takes long (about 45 min for 100
students x 3 notebooks on 2 cores, all runs) and its figures depend on the machine and its load.
"""
import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from nbgrader.api import Gradebook
from traitlets.config import Config

from coursekit import assignments as course_assignments
from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.nbgrader_cli import ENV_WITH_VENV
from coursekit.testing import COURSE_ROOT, make_course_folder

# Plain `nbgrader autograde` gives nothing but its log: GuardedExecute's timing record (coursekit.outcomes.Timing)
# is read back from the words it logs. coursekit grade's results carry the records themselves.
TIMING = re.compile(r"coursekit: timing \S*: kernel start/stop ([\d.]+) s, cells ([\d.]+) s")


def proportional_memory(pid: int) -> int:
    """Bytes of memory a process uses, its pages shared with others divided among them (Linux's PSS; 0 if unknown).

    Forked kernels share their template process's pages: summing resident sizes would count those pages once per
    kernel, summing PSS counts them once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ProcessTreeSampler:
    """The one sampler of the benchmarks: samples a process tree (sandboxed kernels included) in a thread. Memory: `peak`, the most the resident sizes summed to, and
    `peak_pss`, the most their proportional sizes (PSS) summed to, in bytes. Also keeps the last CPU time seen of
    each descendant: `cpu_seconds` (processes that lived at least one sampling interval), counting only what
    descendants already running at the start spent after it. `exclude`: processes whose trees are not counted."""

    def __init__(self, root: psutil.Process, baseline: int = 0, include_root: bool = True,
                 exclude: list[psutil.Process] = ()):
        self.root, self.baseline, self.include_root = root, baseline, include_root
        self.exclude = {p.pid for p in exclude}
        self.baseline_pss = proportional_memory(root.pid) if baseline else 0
        self.peak = self.peak_pss = 0
        self.root_cpu_start = self.root_cpu = sum(root.cpu_times()[:2])
        self.sampler_cpu = 0.0  # this sampling thread's own CPU time (it runs in the root process when that is us)
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds last seen
        self.cpu_before: dict[tuple[int, float], float] = {}  # the same, for those already running at the start
        for process in self._descendants():
            try:
                times = process.cpu_times()
                self.cpu_before[(process.pid, process.create_time())] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _descendants(self) -> list[psutil.Process]:
        found = []
        for child in self.root.children():
            if child.pid not in self.exclude:
                try:
                    found += [child, *child.children(recursive=True)]
                except psutil.NoSuchProcess:
                    pass
        return found

    def _run(self):
        while not self._stop.is_set():
            total = total_pss = 0
            try:
                processes = self._descendants()
                self.root_cpu = sum(self.root.cpu_times()[:2])
                if self.include_root:
                    total += max(0, self.root.memory_info().rss - self.baseline)
                    total_pss += max(0, proportional_memory(self.root.pid) - self.baseline_pss)
            except psutil.NoSuchProcess:
                processes = []
            for process in processes:
                try:
                    with process.oneshot():
                        total += process.memory_info().rss
                        total_pss += proportional_memory(process.pid)
                        times = process.cpu_times()
                        self.cpu[(process.pid, process.create_time())] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            self.peak, self.peak_pss = max(self.peak, total), max(self.peak_pss, total_pss)
            self.sampler_cpu = time.thread_time()
            self._stop.wait(0.2)
        try:
            self.root_cpu = sum(self.root.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the descendants seen, and of the root since sampling began (without this thread's own)."""
        own = self.sampler_cpu if self.root.pid == os.getpid() else 0.0
        descendants = sum(seconds - self.cpu_before.get(key, 0.0) for key, seconds in self.cpu.items())
        return descendants + (self.root_cpu - self.root_cpu_start - own if self.include_root else 0.0)


def build_class(course: Path, assignments: list[str], students: int, seed: int) -> dict[str, int]:
    """Write every student's submissions into course/submitted/; returns how many of each kind."""
    rng = random.Random(seed)
    kinds = {"correct": 0, "one wrong answer": 0, "two wrong answers": 0, "blank": 0}
    for assignment in assignments:
        blank, correct = subs.blank_submission(assignment), subs.correct_submission(assignment)
        answers, wrong = subs.solution_answers(assignment), subs.wrong_answers(assignment)
        for number in range(students):
            draw = rng.random()
            if draw < 0.45:
                kind, notebook = "correct", correct
            elif draw < 0.95 and wrong:
                kind = "one wrong answer" if draw < 0.85 else "two wrong answers"
                exercises = rng.sample(sorted(wrong), k=min(len(wrong), 1 if draw < 0.85 else 2))
                mistakes = {e: rng.choice(list(wrong[e].values())) for e in exercises}
                notebook = subs.with_answers(correct, {**answers, **mistakes})
            else:
                kind, notebook = "blank", blank
            kinds[kind] += 1
            subs.write_submission(course, f"student{number:03d}", assignment, notebook)
    return kinds


def cell_scores(course: Path, assignment: str) -> dict:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {(s.student.id, nb.name, g.name): g.auto_score
                for s in gradebook.assignment_submissions(assignment) for nb in s.notebooks for g in nb.grades}


def run_plain(course: Path, assignment: str, warm: bool) -> dict:
    """`nbgrader autograde ASSIGNMENT` as an instructor runs it: one process, every student in turn."""
    log = course / f"plain-{assignment}.log"
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force",
                                    f"--SandboxProvisioner.warm={warm}"],
                                   cwd=course, env=ENV_WITH_VENV, stdout=out, stderr=subprocess.STDOUT)
        with ProcessTreeSampler(psutil.Process(process.pid)) as memory:
            process.wait()
    seconds = time.perf_counter() - started
    text = log.read_text()
    split = [(float(k), float(c)) for k, c in TIMING.findall(text)]
    return {"seconds": seconds, "peak": memory.peak, "pss": memory.peak_pss, "split": split,
            "locked": text.count("database is locked"), "exit": process.returncode, "cpu": memory.cpu_seconds}


def run_parallel(course: Path, assignment: str, jobs: int, warm: bool) -> dict:
    me = psutil.Process()
    started = time.perf_counter()
    with ProcessTreeSampler(me, baseline=me.memory_info().rss) as memory:
        results = grade_assignment(course, assignment, config=Config({"Grading": {"jobs": jobs}, "SandboxProvisioner": {"warm": warm}}))
    seconds = time.perf_counter() - started
    split = [(t.kernel_seconds, t.cells_seconds) for r in results for t in r.timings]
    return {"seconds": seconds, "peak": memory.peak, "pss": memory.peak_pss, "split": split,
            "cpu": memory.cpu_seconds,
            "locked": sum(r.log.count("database is locked") for r in results),
            "problems": [f"{r.student}: {r.problem}" for r in results if r.problem]}


# name -> (how it grades, warm kernels)
RUNS = {"plain cold": ("plain", False), "plain warm": ("plain", True),
        "coursekit cold": ("coursekit", False), "coursekit warm": ("coursekit", True)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", help="default: all")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: all cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep the course folders here")
    parser.add_argument("--runs", type=lambda text: text.split(","), default=list(RUNS),
                        help=f"comma-separated, of: {', '.join(RUNS)} (default: all)")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.runs if name not in RUNS]:
        parser.error(f"unknown runs: {unknown}; choose from {list(RUNS)}")
    assignments = args.assignments or course_assignments(COURSE_ROOT)

    scratch = Path(args.keep or tempfile.mkdtemp(prefix="grade-class-"))
    scratch.mkdir(parents=True, exist_ok=True)
    base = scratch / "class"
    print(f"building the class in {scratch} ...", flush=True)
    make_course_folder(base, assignments)
    kinds = build_class(base, assignments, args.students, args.seed)
    courses = {}
    for name in args.runs:
        courses[name] = scratch / name.replace(" ", "-")
        shutil.rmtree(courses[name], ignore_errors=True)
        shutil.copytree(base, courses[name])
    total = args.students * len(assignments)
    print(f"synthetic class: {args.students} students x {len(assignments)} notebooks = {total} submissions "
          f"({', '.join(f'{n} {k}' for k, n in kinds.items())})")
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} before grading", flush=True)

    runs: dict[str, dict] = {}
    for name in args.runs:
        kind, warm = RUNS[name]
        runs[name] = {}
        for assignment in assignments:
            if kind == "plain":
                runs[name][assignment] = run_plain(courses[name], assignment, warm)
            else:
                runs[name][assignment] = run_parallel(courses[name], assignment, args.jobs, warm)
            print(f"  {name:15s} {assignment}: {runs[name][assignment]['seconds']:7.1f} s", flush=True)
    load_after = os.getloadavg()

    def figures(by_assignment: dict, workers: int) -> list[str]:
        seconds = sum(r["seconds"] for r in by_assignment.values())
        rate = total / seconds * 60
        peak = max(r["peak"] for r in by_assignment.values())
        pss = max(r["pss"] for r in by_assignment.values())
        cpu = sum(r["cpu"] for r in by_assignment.values()) / total
        lines = [f"{seconds / 60:6.1f} min  {rate:6.1f} submissions/min  peak memory {pss / 2**20:5.0f} MiB PSS "
                 f"({peak / 2**20:5.0f} MiB RSS summed)  CPU {cpu:4.2f} s per submission"]
        for assignment, r in by_assignment.items():
            split = r["split"] or [(float("nan"), float("nan"))]
            kernel, cells = statistics.fmean(k for k, _ in split), statistics.fmean(c for _, c in split)
            per_notebook = r["seconds"] * workers / args.students  # worker-seconds spent on one notebook
            lines.append(f"    {assignment:26s} {per_notebook:5.1f} s per notebook = kernel start/stop {kernel:4.1f} s"
                         f" + cells {cells:4.1f} s + nbgrader and the rest {per_notebook - kernel - cells:4.1f} s")
        return lines

    print()
    seconds = {name: sum(r["seconds"] for r in by_assignment.values()) for name, by_assignment in runs.items()}
    for name, by_assignment in runs.items():
        workers = 1 if RUNS[name][0] == "plain" else args.jobs
        title = {"plain cold": "`nbgrader autograde --SandboxProvisioner.warm=False` (serial, cold kernels)",
                 "plain warm": "`nbgrader autograde` (serial, warm kernels)",
                 "coursekit cold": f"`coursekit grade --jobs {args.jobs} --cold-kernels`",
                 "coursekit warm": f"`coursekit grade --jobs {args.jobs}` (warm kernels)"}[name]
        ratio = f"  {seconds['plain cold'] / seconds[name]:.2f}x plain cold" if "plain cold" in seconds else ""
        print(f"{name}: {title}{ratio}\n  " + "\n  ".join(figures(by_assignment, workers)))
    print(f"(load average after: {' '.join(f'{x:.2f}' for x in load_after)})")
    names = list(runs)
    same = all(cell_scores(courses[names[0]], a) == cell_scores(courses[other], a)
               for other in names[1:] for a in assignments)
    cells = sum(len(cell_scores(courses[names[0]], a)) for a in assignments)
    print(f"same score for every test cell in all {len(names)} gradebooks: {'yes' if same else 'NO'} "
          f"({cells} graded cells each)")
    print('"database is locked": ' + ", ".join(f'{name} {sum(r["locked"] for r in by_assignment.values())}'
                                                for name, by_assignment in runs.items()))
    problems = [f"{name}: {p}" for name, by_assignment in runs.items() for r in by_assignment.values()
                for p in r.get("problems", [])]
    print(f"submissions reported by coursekit grade: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if same else 1

if __name__ == "__main__":
    sys.exit(main())
