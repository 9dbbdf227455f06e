"""Throwaway local services for the tests and benchmarks: a PostgreSQL server and a Dask cluster.

Both run as local processes on 127.0.0.1, in a temporary folder, on free ports, and are stopped (with everything
they started) when their `with` block ends:

    with postgres_server() as pg:                   # pg.url("course_a") -> a fresh database, as an nbgrader db_url
        with dask_cluster(workers=2) as cluster:    # cluster.address -> tcp://127.0.0.1:PORT
            ...

PostgreSQL comes from the machine: `initdb` and `pg_ctl` on PATH or in Debian's /usr/lib/postgresql/<n>/bin
(`apt-get install postgresql`; `make test` installs it when run as root). `initdb` refuses to run as root, so as
root the server runs as the unprivileged user `nobody`, in a data folder only it can read.

Not pytest-postgresql (10.0): its executor runs initdb and pg_ctl as the current user, which PostgreSQL refuses as
root (CI grades as root), and its fixtures are pytest's, where the benchmarks need a plain context manager.
"""
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_USER = "grader"
UNPRIVILEGED = "nobody"


class ServiceUnavailable(RuntimeError):
    """A service the caller asked for cannot run on this machine (the message says what to install)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path:
    """The folder with initdb and pg_ctl: on PATH, else the newest of Debian's /usr/lib/postgresql/<n>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: float(p.parent.parent.name)
                    if p.parent.parent.name.replace(".", "").isdigit() else 0)
    if debian:
        return debian[-1].parent
    raise ServiceUnavailable("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql): "
                             "install Debian's `postgresql` package (`sudo apt-get install postgresql`); "
                             "`make test` does it when run as root")


@dataclass
class PostgresServer:
    port: int
    password: str
    data: Path
    bin: Path
    log: Path
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its nbgrader db_url."""
        import psycopg

        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def query(self, database: str, sql: str, *params) -> list[tuple]:
        """Run one statement; returns its rows (none for a statement that returns no rows)."""
        import psycopg

        with psycopg.connect(self.url(database, driver="postgresql"), autocommit=True) as connection:
            cursor = connection.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []


def _as_unprivileged() -> dict:
    """Popen arguments that run a command as `nobody` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    user = pwd.getpwnam(UNPRIVILEGED)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def postgres_server(startup_timeout: float = 60):
    """A PostgreSQL server for this block: a fresh cluster in a temporary folder, password auth, 127.0.0.1 only."""
    pg_bin = postgres_bin()
    unprivileged = _as_unprivileged()
    # Under /tmp (world-traversable), not pytest's 0700 folders: the server's user must reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="coursekit-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    if unprivileged:
        for path in (root, pwfile):
            os.chown(path, unprivileged["user"], unprivileged["group"])
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    port = free_port()  # no port 0 for PostgreSQL (its `port` is 1..65535), so a free one is picked here
    started = False
    try:
        subprocess.run([pg_bin / "initdb", "-D", data, "-U", PG_USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                        "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, env=env, cwd=root,
                       **unprivileged)
        pwfile.unlink()
        # Only TCP on 127.0.0.1 (no Unix socket in a shared folder); fsync off: a throwaway server.
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' -c fsync=off " \
                  "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        subprocess.run([pg_bin / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w",
                        "-t", str(int(startup_timeout)), "start"], check=True, capture_output=True, env=env,
                       cwd=root, **unprivileged)
        started = True
        yield PostgresServer(port, password, data, pg_bin, log)
    except subprocess.CalledProcessError as error:
        if started:  # the caller's own, raised in its block
            raise
        detail = (error.stderr or b"").decode(errors="replace")[-1500:]
        if log.exists():
            detail += "\n" + log.read_text(errors="replace")[-1500:]
        raise ServiceUnavailable(f"PostgreSQL failed to start ({' '.join(map(str, error.cmd[:2]))}): {detail}")
    finally:
        if started:
            subprocess.run([pg_bin / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], capture_output=True,
                           env=env, cwd=root, **unprivileged)
        _remove(root)


# ----------------------------------------------------------------------------------------------------------------
# A Dask cluster of local processes: `dask scheduler` and `dask worker` commands, as an instructor starts them


@dataclass
class DaskCluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def add_worker(self, name: str, env: dict | None = None, nthreads: int = 1,
                   timeout: float = 120) -> subprocess.Popen:
        """Start `dask worker ADDRESS` (one process, with its nanny) and wait until the scheduler sees it."""
        env = {**GRADING_WORKER_ENV, **(env or {})}
        folder = self.folder / name
        folder.mkdir()
        log = open(folder / "worker.log", "wb")
        worker = subprocess.Popen(
            [*_dask_command(), "worker", self.address, "--name", name, "--nthreads", str(nthreads),
             "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(folder),
             "--death-timeout", "60"],
            cwd=folder, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        self.workers.append(worker)
        self.wait_for_workers({name}, timeout)
        return worker

    def worker_names(self) -> set[str]:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}

    def wait_for_workers(self, names: set[str], timeout: float = 120):
        deadline = time.monotonic() + timeout
        while not names <= self.worker_names():
            dead = [w for w in self.workers if w.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in self.folder.glob("*/worker.log"))
                raise ServiceUnavailable(f"Dask workers {sorted(names)} did not join {self.address}:\n{logs}")
            time.sleep(0.3)

    def stop_worker(self, worker: subprocess.Popen):
        _stop_process_tree(worker)
        if worker in self.workers:
            self.workers.remove(worker)


def _dask_command() -> list[str]:
    # `python -m distributed.cli.dask_<x>` is what the `dask scheduler` / `dask worker` commands run; this
    # form needs no bin/ folder on PATH.
    return [sys.executable, "-m", "dask"]


# How the README tells instructors to configure grading workers (coursekit.cluster.WORKER_CONFIG).
GRADING_WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


@contextlib.contextmanager
def dask_cluster(workers: int = 2, env: dict | None = None, timeout: float = 120):
    """A `dask scheduler` on 127.0.0.1 and `workers` `dask worker` processes (1 thread each), stopped at the end.

    env: more environment variables for all of them (on top of GRADING_WORKER_ENV)."""
    env = {**GRADING_WORKER_ENV, **(env or {})}
    folder = Path(tempfile.mkdtemp(prefix="coursekit-dask-"))
    scheduler_file = folder / "scheduler.json"
    log = open(folder / "scheduler.log", "wb")
    scheduler = subprocess.Popen(
        # Port 0: the scheduler binds a free port itself and writes its real address into the scheduler file (a port
        # picked here first could be taken by another process before the scheduler binds it).
        [*_dask_command(), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        cwd=folder, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    cluster = None
    try:
        deadline = time.monotonic() + timeout
        while not scheduler_file.exists():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable("the Dask scheduler did not start:\n"
                                         + (folder / "scheduler.log").read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        cluster = DaskCluster(_scheduler_address(scheduler_file, scheduler, deadline), folder, scheduler)
        for number in range(workers):
            cluster.add_worker(f"worker-{number + 1}", env=env, timeout=timeout)
        yield cluster
    finally:
        # The workers at once (SIGKILL what is left after 5 s: nothing of a throwaway cluster is worth waiting for),
        # then the scheduler.
        _stop_process_tree(*(cluster.workers if cluster else []), grace=5)
        _stop_process_tree(scheduler)
        _remove(folder)


def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen, deadline: float) -> str:
    """The address in the scheduler's file, which may be seen before it is completely written."""
    import json

    while True:
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (ValueError, KeyError):
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable(f"the Dask scheduler wrote no address into {scheduler_file.name}:\n"
                                         + (scheduler_file.parent / "scheduler.log").read_text(errors="replace")[-2000:]
                                         ) from None
            time.sleep(0.1)


def _remove(folder: Path, attempts: int = 10):
    """Delete a folder that a process which just stopped may still be writing into (a last log line, a pid file)."""
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.5)


def _stop_process_tree(*processes: subprocess.Popen, grace: float = 10):
    """SIGTERM the processes (a `dask worker` command stops its worker and their kernels), then SIGKILL whatever of
    their process trees is left after `grace` seconds."""
    import psutil

    tree = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
    _, alive = psutil.wait_procs(tree, timeout=1)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
