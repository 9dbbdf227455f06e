"""Grade a synthetic class with nbgrader's own serial `nbgrader autograde` and with `coursekit grade`, and compare.

    .venv/bin/python benchmarks/grade_class.py [--students 100] [--jobs N] [--seed 1] [ASSIGNMENT ...]

Builds a course folder with every assignment (default: all three) and a class of --students students who each
hand in every notebook, made from the course's own notebooks and realistic answers (coursekit.submissions):
about 45 % correct, 40 % with one realistic wrong answer (tests/wrong_answers/), 10 % with two, 5 % blank
(coursekit.testing).
Two copies of that folder are graded in the same run, one after the other:

- plain:    `nbgrader autograde ASSIGNMENT --force` per assignment (one process, students one after another);
- parallel: coursekit.grading.grade_assignment(..., jobs=N) per assignment (N worker processes, default all cores).

Prints, for each: wall time, submissions per minute, peak memory (sum of the resident memory of the grading
processes and their kernels, sampled every 0.2 s), and per notebook the time split into kernel start/stop,
running the cells, and the rest (nbgrader itself, the gradebook, process start), and the CPU time per submission
(all processes, kernels included: comparable even when other work shares the machine). Then the speed-up, whether both
wrote the same score for every test cell, and how often "database is locked" appeared. Not a test: it takes
long (about 45 min for 100 students x 3 notebooks on 2 cores, both runs) and its figures depend on the machine
and its load.
"""
import argparse
import os
import random
import resource
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

from coursekit import assignments as course_assignments
from coursekit import testing as subs
from coursekit.grading import Grading, grade_assignment
from coursekit.nbgrader_cli import ENV_WITH_VENV
from coursekit.testing import COURSE_ROOT, make_course_folder

# Plain `nbgrader autograde` gives nothing but its log: GuardedExecute's timing record (coursekit.outcomes.Timing)
# is read back from the words it logs. coursekit grade's results carry the records themselves.
TIMING = re.compile(r"coursekit: timing \S*: kernel start/stop ([\d.]+) s, cells ([\d.]+) s")


class PeakMemory:
    """Samples the resident memory of a process tree in a thread; `peak` in bytes. Also keeps the last CPU time seen
    of each descendant: `cpu_seconds` (processes that lived at least one sampling interval)."""

    def __init__(self, root: psutil.Process, baseline: int = 0, include_root: bool = True):
        self.root, self.baseline, self.include_root = root, baseline, include_root
        self.peak = 0
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            total = 0
            try:
                processes = self.root.children(recursive=True)
                if self.include_root:
                    total += max(0, self.root.memory_info().rss - self.baseline)
            except psutil.NoSuchProcess:
                processes = []
            for process in processes:
                try:
                    with process.oneshot():
                        total += process.memory_info().rss
                        times = process.cpu_times()
                        self.cpu[(process.pid, process.create_time())] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)


    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


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


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process and of the children they waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_plain(course: Path, assignment: str) -> dict:
    """`nbgrader autograde ASSIGNMENT` as an instructor runs it: one process, every student in turn."""
    log = course / f"plain-{assignment}.log"
    cpu = children_cpu()
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"],
                                   cwd=course, env=ENV_WITH_VENV, stdout=out, stderr=subprocess.STDOUT)
        with PeakMemory(psutil.Process(process.pid)) as memory:
            process.wait()
    seconds = time.perf_counter() - started
    text = log.read_text()
    split = [(float(k), float(c)) for k, c in TIMING.findall(text)]
    return {"seconds": seconds, "peak": memory.peak, "split": split, "locked": text.count("database is locked"),
            "exit": process.returncode, "cpu": children_cpu() - cpu}


def run_parallel(course: Path, assignment: str, jobs: int) -> dict:
    me = psutil.Process()
    cpu, own_cpu = children_cpu(), sum(me.cpu_times()[:2])
    started = time.perf_counter()
    with PeakMemory(me, baseline=me.memory_info().rss) as memory:
        results = grade_assignment(course, assignment, settings=Grading(jobs=jobs))
    seconds = time.perf_counter() - started
    split = [(t.kernel_seconds, t.cells_seconds) for r in results for t in r.timings]
    return {"seconds": seconds, "peak": memory.peak, "split": split,
            "cpu": children_cpu() - cpu + sum(me.cpu_times()[:2]) - own_cpu,
            "locked": sum(r.log.count("database is locked") for r in results),
            "problems": [f"{r.student}: {r.problem}" for r in results if r.problem]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", help="default: all")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers (default: all cores)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep the course folders here")
    args = parser.parse_args(argv)
    assignments = args.assignments or course_assignments(COURSE_ROOT)

    scratch = Path(args.keep or tempfile.mkdtemp(prefix="grade-class-"))
    scratch.mkdir(parents=True, exist_ok=True)
    base = scratch / "class"
    print(f"building the class in {scratch} ...", flush=True)
    make_course_folder(base, assignments)
    kinds = build_class(base, assignments, args.students, args.seed)
    plain_course, parallel_course = scratch / "plain", scratch / "parallel"
    for copy in (plain_course, parallel_course):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
    total = args.students * len(assignments)
    print(f"synthetic class: {args.students} students x {len(assignments)} notebooks = {total} submissions "
          f"({', '.join(f'{n} {k}' for k, n in kinds.items())})")
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} before grading", flush=True)

    plain, parallel = {}, {}
    for assignment in assignments:
        plain[assignment] = run_plain(plain_course, assignment)
        print(f"  plain    {assignment}: {plain[assignment]['seconds']:7.1f} s", flush=True)
    for assignment in assignments:
        parallel[assignment] = run_parallel(parallel_course, assignment, args.jobs)
        print(f"  parallel {assignment}: {parallel[assignment]['seconds']:7.1f} s", flush=True)
    load_after = os.getloadavg()

    def figures(runs: dict, workers: int) -> list[str]:
        seconds = sum(r["seconds"] for r in runs.values())
        rate = total / seconds * 60
        peak = max(r["peak"] for r in runs.values())
        cpu = sum(r["cpu"] for r in runs.values()) / total
        lines = [f"{seconds / 60:6.1f} min  {rate:6.1f} submissions/min  peak memory {peak / 2**20:6.0f} MiB  "
                 f"CPU {cpu:4.1f} s per submission"]
        for assignment, r in runs.items():
            split = r["split"] or [(float("nan"), float("nan"))]
            kernel, cells = statistics.fmean(k for k, _ in split), statistics.fmean(c for _, c in split)
            per_notebook = r["seconds"] * workers / args.students  # worker-seconds spent on one notebook
            lines.append(f"    {assignment:26s} {per_notebook:5.1f} s per notebook = kernel start/stop {kernel:4.1f} s"
                         f" + cells {cells:4.1f} s + nbgrader and the rest {per_notebook - kernel - cells:4.1f} s")
        return lines

    plain_seconds = sum(r["seconds"] for r in plain.values())
    parallel_seconds = sum(r["seconds"] for r in parallel.values())
    print()
    print("plain `nbgrader autograde` (serial):\n  " + "\n  ".join(figures(plain, 1)))
    print(f"`coursekit grade --jobs {args.jobs}`:\n  " + "\n  ".join(figures(parallel, args.jobs)))
    print(f"speed-up: {plain_seconds / parallel_seconds:.2f}x  (load average after: "
          f"{' '.join(f'{x:.2f}' for x in load_after)})")
    same = all(cell_scores(plain_course, a) == cell_scores(parallel_course, a) for a in assignments)
    cells = sum(len(cell_scores(plain_course, a)) for a in assignments)
    print(f"same score for every test cell in both gradebooks: {'yes' if same else 'NO'} ({cells} graded cells)")
    print(f'"database is locked": plain {sum(r["locked"] for r in plain.values())}, '
          f'parallel {sum(r["locked"] for r in parallel.values())}')
    problems = [p for r in parallel.values() for p in r["problems"]]
    print(f"submissions reported by coursekit grade: {len(problems)}" + "".join(f"\n  {p}" for p in problems[:10]))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
