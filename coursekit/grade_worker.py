"""A grading worker process: `python -m coursekit.grade_worker [--db URL] [--timeout N]`, run in a course folder.

It loads nbgrader and the course's nbgrader_config.py once, then reads jobs from stdin, one JSON object per line
({"assignment": ..., "student": ...}), and for each runs nbgrader's Autograde converter in this process: the same
code, configuration and gradebook writes as `nbgrader autograde ASSIGNMENT --student STUDENT --force`, without
paying for a new Python process and nbgrader's imports per student. After each job it answers one JSON line:
{"student", "success", "log", "problems", "scores", "max_scores", "seconds"}.

coursekit.grading starts one worker per parallel job, restarts a worker that dies, and kills one that runs past
its deadline (with its kernels).
"""
import argparse
import json
import logging
import os
import re
import sys
import time
import traceback

# Waiting this long for a write lock on a SQLite gradebook is fine; failing with "database is locked" is not.
SQLITE_BUSY_TIMEOUT = 120


def with_busy_timeout(db_url: str) -> str:
    """A SQLite URL waits up to SQLITE_BUSY_TIMEOUT s for another writer (pysqlite's default is 5 s)."""
    if not db_url.startswith("sqlite") or re.search(r"[?&]timeout=", db_url):
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={SQLITE_BUSY_TIMEOUT}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursekit.grade_worker")
    parser.add_argument("--db", default=None, help="gradebook URL (default: nbgrader_config.py's db_url)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: nbgrader_config.py)")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grading kernels run without the bubblewrap sandbox (GuardedExecute.unsafe_no_sandbox)")
    args = parser.parse_args(argv)

    # Answers go through a private copy of stdout; whatever else writes to file descriptor 1 (a kernel, a
    # library) ends up on stderr and cannot corrupt the protocol.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    if "COURSEKIT_PYTHONPATH" in os.environ:  # kernels get the environment `nbgrader autograde` would give them
        original = os.environ.pop("COURSEKIT_PYTHONPATH")
        if original:
            os.environ["PYTHONPATH"] = original
        else:
            os.environ.pop("PYTHONPATH", None)

    app = _autograde_app(args)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            answer = grade(app, job["assignment"], job["student"])
        except Exception:  # nbgrader itself failed outside a notebook: report it, stay alive for the next job
            answer = {"student": job["student"], "success": False, "log": traceback.format_exc(),
                      "scores": {}, "max_scores": {}, "seconds": 0.0}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


def _autograde_app(args):
    """nbgrader's autograde application, configured exactly as the command line would be."""
    from nbgrader.apps import AutogradeApp

    argv = ["--force"]
    if args.timeout is not None:
        argv.append(f"--Execute.timeout={args.timeout}")
    if args.unsafe_no_sandbox:
        argv.append("--GuardedExecute.unsafe_no_sandbox=True")
    app = AutogradeApp()
    app.initialize(argv)
    app.log.setLevel(logging.INFO)  # as the command line shows it; DEBUG would format every kernel message
    app.coursedir.db_url = with_busy_timeout(args.db or app.coursedir.db_url)
    return app


def grade(app, assignment: str, student: str) -> dict:
    from nbgrader.converters import Autograde
    from nbgrader.utils import capture_log

    from . import outcomes

    outcomes.drain()  # nothing left over from an earlier submission
    started = time.perf_counter()
    app.coursedir.assignment_id = assignment
    app.coursedir.student_id = student
    converter = Autograde(coursedir=app.coursedir, parent=app)
    outcome = capture_log(converter)
    answer = {"student": student, "success": outcome["success"],
              "log": outcome.get("log", "") + outcome.get("error", "")}
    # What the course's preprocessors reported (coursekit.outcomes): tampering found, a kernel that went silent.
    answer["problems"] = [{"kind": p.kind.name, "detail": p.detail, "cells": list(p.cells)} for p in outcomes.drain()]
    answer.update(read_scores(app.coursedir.db_url, app.coursedir.course_id, assignment, student))
    answer["seconds"] = time.perf_counter() - started
    return answer


def read_scores(db_url: str, course_id: str, assignment: str, student: str) -> dict:
    """Automatic scores of the student's test cells, as nbgrader's gradebook holds them now."""
    from nbgrader.api import Gradebook, MissingEntry

    scores, max_scores = {}, {}
    with Gradebook(db_url, course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return {"scores": scores, "max_scores": max_scores}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.cell.cell_type != "code":  # manually graded prose answers are not autograded
                    continue
                max_scores[grade.name] = grade.max_score
                scores[grade.name] = grade.auto_score or 0.0
    return {"scores": scores, "max_scores": max_scores}


if __name__ == "__main__":
    sys.exit(main())
