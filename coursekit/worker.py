"""The grading worker protocol, both sides: the messages, the parent's handle on a worker process, the child's loop.

A worker is a `python -m coursekit.grade_worker` process started in the course folder. The two sides talk over a
socket pair with `multiprocessing.connection` (length-prefixed pickles of the dataclasses below): first a
`WorkerSetup`, then one `GradeJob` at a time, each answered by one `WorkerAnswer`. Whatever the worker or its
kernels print goes to a file, never into the protocol. A worker that dies shows as end of file; one that runs past
its deadline is killed with every process it started (psutil). What the worker and its kernels printed while grading
a job (a kernel's or bubblewrap's error, a traceback) is kept with that job (`WorkerProcess.last_output`).

Not pebble's ProcessPool (5.2) with per-task timeouts: on a timeout it stops only the worker process (terminate, then
SIGKILL its pid), leaving the sandboxed kernels that worker started running, and its workers share the pool's stderr,
where coursekit keeps what each job printed.
"""
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import psutil
from traitlets.config import Config

from .nbgrader_cli import ENV_WITH_VENV
from .outcomes import CellChange, Problem, Timing


@dataclass(frozen=True)
class WorkerSetup:
    """Sent once, first: settings on top of the course's nbgrader_config.py, and the SQLite busy timeout."""

    config: Config
    sqlite_busy_timeout: float


@dataclass(frozen=True)
class GradeJob:
    assignment: str
    student: str


@dataclass
class WorkerAnswer:
    """What the worker found grading one job: scores from the gradebook, and what went wrong or was put right."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)
    max_scores: dict[str, float] = field(default_factory=dict)
    problem: Problem | None = None
    reviews: list[Problem] = field(default_factory=list)
    changes: list[CellChange] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    log: str = ""
    seconds: float = 0.0


class WorkerTimedOut(Exception):
    pass


class WorkerDied(Exception):
    pass


class WorkerProcess:
    """The parent's side: one worker process, fed one job at a time."""

    COMMAND = [sys.executable, "-m", "coursekit.grade_worker"]  # the file descriptor of its socket is added
    OUTPUT_KEPT = 20_000  # characters of a job's output kept with it (the end, where the error is)

    last_output = ""  # what the worker and its kernels printed while grading the last job

    def __init__(self, course_root: Path, setup: WorkerSetup, command: list[str] | None = None):
        self.output = tempfile.TemporaryFile()  # the worker's and its kernels' stdout and stderr
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [*(command or self.COMMAND), str(theirs.fileno())], cwd=course_root,
                env=ENV_WITH_VENV, stdin=subprocess.DEVNULL, stdout=self.output, stderr=self.output,
                pass_fds=[theirs.fileno()])
        self.connection = Connection(ours.detach())
        self.dead = False
        self._send(setup)

    def grade(self, job: GradeJob, deadline: float) -> WorkerAnswer:
        """The worker's answer; WorkerTimedOut after `deadline` seconds (the worker is killed), WorkerDied.
        Either way, `last_output` is what the worker and its kernels printed meanwhile."""
        start = self._output_size()
        try:
            self._send(job)
            if not self.connection.poll(deadline):
                self.kill()
                raise WorkerTimedOut()
            try:
                return self.connection.recv()
            except (EOFError, OSError):
                self._died()
        finally:
            self.last_output = self._output_since(start)

    def _output_size(self) -> int:
        return os.fstat(self.output.fileno()).st_size

    def _output_since(self, start: int) -> str:
        # pread: the worker writes through the same open file, whose offset must not move
        end = self._output_size()
        first = max(start, end - self.OUTPUT_KEPT)
        text = os.pread(self.output.fileno(), end - first, first).decode(errors="replace")
        return (f"[... {first - start} bytes left out ...]\n" if first > start else "") + text

    def _send(self, message) -> None:
        try:
            self.connection.send(message)
        except OSError:  # BrokenPipeError, ConnectionResetError: it is gone
            self._died()

    def _died(self):
        self.kill()
        code = self.process.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        end = self._output_size()
        tail = os.pread(self.output.fileno(), min(end, 2000), max(0, end - 2000)).decode(errors="replace")
        last = [line for line in tail.splitlines() if line.strip()]
        raise WorkerDied(how + (f"; last words: {last[-1][:200]}" if last else ""))

    def kill(self) -> None:
        """Kill the worker and everything it started (kernels run in their own process groups)."""
        self.dead = True
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        for process in [self.process, *children]:
            try:
                process.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        self.process.wait()
        psutil.wait_procs(children, timeout=5)

    def close(self) -> None:
        if not self.dead:
            self.connection.close()  # the worker sees end of file and exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        else:
            self.connection.close()
        self.output.close()


def serve(connection: Connection, start, grade) -> None:
    """The child's side: `start(setup)` once, then answer each job with `grade(job)` until end of file."""
    state = start(connection.recv())
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        connection.send(grade(state, job))
