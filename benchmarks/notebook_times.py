"""How long each solution notebook takes to run top to bottom (the course aims for under 10 s each).

    .venv/bin/python benchmarks/notebook_times.py [--repeat N] [--budget SECONDS] [ASSIGNMENT ...]

For each notebook in solutions/: the time to run all its cells in a fresh kernel (best and median of N runs,
kernel start not included), the part of it autograde runs (without the cells tagged skip-when-grading), the CPU
time the kernel used (on Linux), the kernel start, and the slowest cells. The load average is printed too: wall
times taken while other work keeps the cores busy are not comparable, CPU times mostly are. Exits 1 if a notebook's best run is over budget.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import nbformat
import psutil
from nbclient import NotebookClient

from coursekit import assignments
from coursekit.testing import COURSE_ROOT


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (NaN when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return times.user + times.system


def run_once(path) -> tuple[float, float, float, list[tuple[float, str, bool]]]:
    """(kernel start s, cells s, kernel CPU s, [(seconds, cell name, graded)] per code cell) for one run of every
    cell, as a student's Run All does (nbclient's own skip tag is not used in the course)."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="notebook-times-") as folder:
        client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": folder}})
        started = time.perf_counter()
        with client.setup_kernel():
            kernel_ready = time.perf_counter()
            pid = client.km.provisioner.process.pid
            cpu_before = cpu_seconds(pid)
            cells = []
            for index, cell in enumerate(notebook.cells):
                if cell.cell_type == "code":
                    before = time.perf_counter()
                    client.execute_cell(cell, index)
                    name = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {index}")
                    graded = "skip-when-grading" not in cell.metadata.get("tags", [])
                    cells.append((time.perf_counter() - before, name, graded))
            finished = time.perf_counter()
            cpu = cpu_seconds(pid) - cpu_before
    return kernel_ready - started, finished - kernel_ready, cpu, cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", help="default: every assignment in solutions/")
    parser.add_argument("--repeat", type=int, default=3, help="runs per notebook (default 3)")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds a notebook may take (default 10)")
    args = parser.parse_args(argv)
    names = args.assignments or [a for a in assignments(COURSE_ROOT) if (COURSE_ROOT / "solutions" / a).is_dir()]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    over = []
    for name in names:
        path = COURSE_ROOT / "solutions" / name / f"{name}.ipynb"
        runs = [run_once(path) for _ in range(args.repeat)]
        totals = [cells for _, cells, _, _ in runs]
        best = min(range(len(runs)), key=lambda i: totals[i])
        slowest = sorted(runs[best][3], reverse=True)[:3]
        graded = sum(seconds for seconds, _, is_graded in runs[best][3] if is_graded)
        print(f"{name:28s} best {totals[best]:5.1f} s  median {statistics.median(totals):5.1f} s  "
              f"as graded {graded:4.1f} s  "
              f"kernel CPU {min(c for _, _, c, _ in runs):4.1f} s  "
              f"(kernel start {statistics.median(k for k, _, _, _ in runs):.1f} s; slowest cells: "
              + ", ".join(f"{cell} {seconds:.1f} s" for seconds, cell, _ in slowest) + ")")
        if totals[best] > args.budget:
            over.append(name)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if over:
        print(f"over the {args.budget:g} s budget: {', '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
