"""Grading on a Dask cluster against local parallel grading, on the same cores, with a PostgreSQL gradebook.

    .venv/bin/python benchmarks/grade_cluster.py [--students 8] [--rounds 1] [--assignment 01-async-database]

Starts a throwaway PostgreSQL server and a Dask cluster of local processes (`dask scheduler`, 2 `dask worker`s with
one thread each, as on an instructor's cluster), builds a class of --students submissions of one assignment
(benchmarks/grade_class.py's mix: correct, one or two wrong answers, blank), then grades copies of it, alternately:

- local: coursekit.grading.grade_assignment(jobs=2), 2 worker processes on this machine;
- dask:  coursekit.grading.grade_assignment(dask=ADDRESS), one task per submission on the 2 Dask workers.

Each run has its own copy of the course and of the gradebook (a PostgreSQL database made from one template). It
prints wall time, submissions per minute and CPU seconds per submission (every process involved: graders, their
kernels, for Dask also the scheduler and the workers' nannies), the overhead of Dask over local in wall time, the
driver's own time per submission, whether both wrote the same score for every test cell; then a paper estimate of
the workers needed for 5,000 submissions in 10 minutes from the measured CPU per submission. The cluster is already
running when the clock starts (as an instructor's is); its start-up time is printed separately.

The figures depend on the machine and on what else runs on it: with other work on the same cores they are noisy.
CPU is counted by sampling the process tree every 0.2 s (grade_class.py's ProcessTreeSampler: every process that lived at
least one interval, the sandboxed kernels included, which getrusage misses: they are reaped inside their own PID
namespace). A local run counts this process and its graders, not the idle Dask cluster; a Dask run counts this
process and the whole cluster. The workers' own "task" figure (coursekit.cluster.TaskStats) is getrusage's, shown
for comparison only.
"""
import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
from nbgrader.api import Gradebook
from traitlets.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grade_class import ProcessTreeSampler, build_class  # noqa: E402

from coursekit.testing import COURSE_ROOT  # noqa: E402
from coursekit.cluster import TaskStats  # noqa: E402
from coursekit.grading import grade_assignment, submitted_students  # noqa: E402
from coursekit.nbgrader_cli import nbgrader  # noqa: E402
from coursekit.throwaway import dask_cluster, postgres_server  # noqa: E402

COURSE_ID = "fastapi-async-db"
TARGET_SUBMISSIONS, TARGET_SECONDS = 5000, 600


class PeakConnections:
    """Samples how many connections a database has, every 0.25 s in a thread, until stop(); `peak`."""

    def __init__(self, pg, database: str):
        import threading

        self.pg, self.database, self.peak = pg, database, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.25):
            count = self.pg.query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                  self.database)[0][0]
            self.peak = max(self.peak, count)

    def stop(self):
        self._stop.set()
        self._thread.join()


def with_gradebook(course: Path, db_url: str):
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + f'\nc.CourseDirectory.db_url = "{db_url}"\n')


def cell_scores(db_url: str, assignment: str) -> dict:
    with Gradebook(db_url, COURSE_ID) as gradebook:
        return {(s.student.id, g.name): g.auto_score
                for s in gradebook.assignment_submissions(assignment) for nb in s.notebooks for g in nb.grades}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="local and dask runs each (alternating)")
    parser.add_argument("--assignment", default="01-async-database")
    parser.add_argument("--dask-profiler", action="store_true",
                        help="leave Dask's statistical profiler on in the workers (Dask's default; the README "
                             "recommends turning it off for grading workers)")
    args = parser.parse_args(argv)
    assignment = args.assignment
    work = Path(tempfile.mkdtemp(prefix="grade-cluster-"))
    try:
        with postgres_server() as pg:
            template = work / "template"
            (template / "source").mkdir(parents=True)
            shutil.copy(COURSE_ROOT / "nbgrader_config.py", template / "nbgrader_config.py")
            shutil.copytree(COURSE_ROOT / "source" / assignment, template / "source" / assignment)
            with_gradebook(template, pg.create_database("template"))
            nbgrader(template, "generate_assignment", assignment, "--force")
            kinds = build_class(template, [assignment], args.students, seed=1)
            print(f"{args.students} submissions of {assignment}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))

            started = time.perf_counter()
            profiler = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": str(args.dask_profiler)}
            with dask_cluster(workers=2, env=profiler) as cluster:
                print(f"Dask cluster (scheduler + 2 workers, 1 thread each, profiler {'on' if args.dask_profiler else 'off'}) started in "
                      f"{time.perf_counter() - started:.1f} s: {cluster.address}\n")
                cluster_processes = [psutil.Process(p.pid) for p in [cluster.scheduler, *cluster.workers]]
                runs = {"local": [], "dask": []}
                scores = {}
                order = [m for r in range(args.rounds) for m in (("local", "dask") if r % 2 == 0 else ("dask", "local"))]
                for number, mode in enumerate(order):
                    name = f"{mode}{number}"
                    pg.query("postgres", f'CREATE DATABASE "{name}" TEMPLATE "template"')
                    course = work / name
                    shutil.copytree(template, course)
                    url = pg.url(name)
                    with_gradebook(course, url)
                    stats: list[TaskStats] = []
                    peak = PeakConnections(pg, name)
                    sampler = ProcessTreeSampler(psutil.Process(), exclude=cluster_processes if mode == "local" else ())
                    sampler.__enter__()
                    t0 = time.perf_counter()
                    if mode == "local":
                        results = grade_assignment(course, assignment, config=Config({"Grading": {"jobs": 2}, "CourseDirectory": {"db_url": url}}))
                    else:
                        from coursekit.cluster import grade_on_dask
                        results = grade_on_dask(course, assignment, submitted_students(course, assignment),
                                                cluster.address, config=Config({"CourseDirectory": {"db_url": url}}), stats=stats)
                    seconds = time.perf_counter() - t0
                    sampler.__exit__(None, None, None)
                    peak.stop()
                    cpu = sampler.cpu_seconds
                    problems = [f"{r.student}: {r.problem}" for r in results if r.problem]
                    scores[name] = cell_scores(url, assignment)
                    connections = pg.query("postgres", "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                           name)[0][0]
                    run = {"seconds": seconds, "cpu": cpu, "n": len(results), "stats": stats, "problems": problems,
                           "connections": connections, "peak_connections": peak.peak}
                    runs[mode].append(run)
                    line = (f"{name:7s} {seconds:6.1f} s  {len(results) / seconds * 60:5.1f} submissions/min  "
                            f"CPU {cpu / len(results):5.2f} s/submission")
                    if stats:
                        line += (f"  (task on the workers, getrusage {statistics.fmean(s.cpu_seconds for s in stats):.2f} s, "
                                 f"driver {statistics.fmean(s.driver_seconds for s in stats) * 1000:.0f} ms)")
                    line += f"  gradebook connections at most {peak.peak}"
                    print(line + (f"  PROBLEMS: {problems}" if problems else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    local_s = statistics.fmean(r["seconds"] for r in runs["local"])
    dask_s = statistics.fmean(r["seconds"] for r in runs["dask"])
    same = all(s == next(iter(scores.values())) for s in scores.values())
    print()
    print(f"Wall time, mean of {args.rounds}: local --jobs 2 {local_s:.1f} s, Dask 2 workers {dask_s:.1f} s: "
          f"overhead {100 * (dask_s / local_s - 1):+.1f} %")
    print(f"Same score for every test cell in every run: {same}; gradebook connections left open after a Dask run: "
          f"{max(r['connections'] for r in runs['dask'])}")
    local_cpu = statistics.fmean(r["cpu"] / r["n"] for r in runs["local"])
    all_cpu = statistics.fmean(r["cpu"] / r["n"] for r in runs["dask"])
    driver = statistics.fmean(s.driver_seconds for r in runs["dask"] for s in r["stats"])
    print()
    print(f"Paper estimate for {TARGET_SUBMISSIONS} submissions in {TARGET_SECONDS // 60} min "
          f"(one single-threaded worker per core):")
    for label, per in (("CPU per submission, local graders and their kernels", local_cpu),
                       ("CPU per submission on Dask, everything (scheduler, nannies, workers, kernels, driver)", all_cpu)):
        workers = math.ceil(TARGET_SUBMISSIONS * per / TARGET_SECONDS)
        print(f"  {label}: {per:.2f} s -> {TARGET_SUBMISSIONS} x {per:.2f} / {TARGET_SECONDS} = "
              f"{TARGET_SUBMISSIONS * per / TARGET_SECONDS:.1f} -> {workers} workers at 100 % use; "
              f"{math.ceil(workers / 0.8)} at 80 %")
    print(f"  The driver handles one result in {driver * 1000:.0f} ms: {TARGET_SUBMISSIONS} take "
          f"{TARGET_SUBMISSIONS * driver:.0f} s of its time ({100 * TARGET_SUBMISSIONS * driver / TARGET_SECONDS:.0f} % of "
          f"the {TARGET_SECONDS} s), in parallel with the workers.")
    return 0 if same and not any(r["problems"] for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
