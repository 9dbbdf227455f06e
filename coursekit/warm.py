"""Warm kernels: every grading kernel is a fresh fork of a template process that has already imported ipykernel and
the course's modules (`SandboxProvisioner.preload_modules` in nbgrader_config.py), injected into its own sandbox.

A cold kernel starts Python and imports ipykernel, FastAPI, SQLAlchemy, httpx... for every notebook: about half of
what grading a Section 1 notebook costs. Here each grading process keeps one template process (the "zygote", as in
Android and PrairieLearn's graders) that imported them once and started no threads. For each kernel:

1. `SandboxProvisioner` starts the kernel's bubblewrap sandbox exactly as for a cold kernel (same mounts, uid,
   limits, namespaces), but what runs inside is a tiny waiter, not the kernel (`WARM_WAITER`);
2. the zygote forks. The fork joins the sandbox's control group (coursekit.cgroup, when it has one), enters the
   sandbox's namespaces (setns: mount, pid, network, ipc, uts, cgroup) and its root, and forks once more so that
   the kernel is a process of the sandbox's PID namespace;
3. the kernel process drops root for good, as setpriv does for a cold kernel: every capability (bounding set
   included), the sandbox's uid and gid, no supplementary groups, no_new_privs, and the same resource limits;
4. it tells the waiter its pid, and runs ipykernel's own entry point with the kernel's command line. The waiter
   exits when the kernel does, which ends the sandbox and everything still running in it.

What one student's kernel did cannot reach the next: the zygote itself never runs a student's code, each kernel is
a new fork of it, and each has its own sandbox, thrown away at the end. Python's `random` is reseeded in every
fork (a fork copies its state).

Needs root (a grading server, CI), where the zygote may enter namespaces; elsewhere the sandbox's kernels start
cold (`SandboxProvisioner` logs why).

Three modules, one per process they run in:
- this one, the grading process's side: `zygote()` starts and keeps one template per list of modules and asks it
  for kernels (`Zygote`); `check_preload_modules` refuses grading up front when a module to preload is missing;
- coursekit.warm_template, the template process itself (`python -m coursekit.warm_template`): preloads, listens,
  forks. Everything it imports is in every kernel, so it imports neither this module nor anything of the grader's;
- coursekit.warm_entry, the fork: enters the sandbox, drops root (every result checked), runs ipykernel.
"""
import json
import os
import sys
import threading

from .warm_template import WarmKernelError

# The kernel's own imports come first; the course's (SandboxProvisioner.preload_modules) are added to these.
KERNEL_MODULES = ["ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "psutil"]

# Runs inside the sandbox instead of the kernel: learns the kernel's pid through the fifo, then lives exactly as long
# as the kernel. When it exits, bubblewrap's init ends and takes every process of the sandbox with it.
WARM_WAITER = """
import os, select, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
line = b""
while not line.endswith(b"\\n"):
    chunk = os.read(fd, 32)
    if not chunk:
        sys.exit("coursekit: the warm kernel did not start")
    line += chunk
os.close(fd)
try:
    kernel = os.pidfd_open(int(line))
except ProcessLookupError:
    sys.exit(0)
select.select([kernel], [], [])
"""


# One zygote per list of modules in each grading process, started on first use, ended with the process.
FOLDER_PREFIX = "coursekit-zygote-"  # its folder in the temporary folder: the control socket

class Zygote:
    """A running zygote: `start_kernel(request)` asks it for a kernel in a sandbox, and answers the kernel's pid."""

    def __init__(self, modules: list[str], environment: dict[str, str]):
        import subprocess
        import tempfile
        self.modules = modules
        self.folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX)  # 0700: the grader's alone
        # Whose it is: when the grader and the template are both killed (a submission past its deadline), the next
        # kernel's start removes the folder (coursekit.sandbox.remove_abandoned_folders).
        from .sandbox import mark_grader  # (sandbox imports this module)
        mark_grader(self.folder)
        self.control = os.path.join(self.folder, "control")
        status_read, status_write = os.pipe()
        # stdin is the lifeline (see warm_template.serve); stdout and stderr are the grader's, as a cold kernel's are.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.warm_template", self.control, str(status_write), *modules],
            stdin=subprocess.PIPE, pass_fds=[status_write], cwd="/", env=environment)
        os.close(status_write)
        self._status_read = status_read
        self._ready: str | None = None  # "" once ready; the error if it could not start
        self._ready_lock = threading.Lock()
        self.announced = False  # the grader's log has said that kernels start warm

    def wait_ready(self) -> None:
        """Block until the zygote has imported its modules; WarmKernelError (saying which module) if it could not."""
        with self._ready_lock:  # kernels may start from several threads at once
            if self._ready is None:
                self._ready = self._read_status()
        if self._ready:
            raise WarmKernelError(f"The warm-kernel template process could not start: {self._ready}. Install what "
                                  "is missing, or change SandboxProvisioner.preload_modules in nbgrader_config.py.")

    def _read_status(self) -> str:
        """The empty string once the zygote is ready, or why it could not start."""
        with os.fdopen(self._status_read) as status:
            text = status.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": f"it exited with code {self.process.wait()} before it was ready"}
        return answer.get("error", "")

    def alive(self) -> bool:
        return self.process.poll() is None

    async def start_kernel(self, request: dict, timeout: float = 60) -> int:
        import asyncio
        self.wait_ready()
        reader, writer = await asyncio.open_unix_connection(self.control)
        try:
            writer.write((json.dumps(request) + "\n").encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        try:
            answer = json.loads(line)
        except ValueError:
            raise WarmKernelError("the zygote closed the connection without an answer") from None
        if "error" in answer:
            raise WarmKernelError(f"a warm kernel could not start: {answer['error']}")
        return answer["pid"]

    def stop(self) -> None:
        import shutil
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except Exception:
                self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def check_preload_modules(modules: list[str]) -> None:
    """WarmKernelError, naming them, when modules the course preloads (SandboxProvisioner.preload_modules) are not
    installed here."""
    import importlib.util
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise WarmKernelError(
            f"Grading refused: {', '.join(missing)} cannot be imported in this environment, and nbgrader_config.py "
            "preloads it into every grading kernel (c.SandboxProvisioner.preload_modules). Install it (`make setup-dev`, "
            "or pip install -r requirements.txt), or remove it from that list.")


_zygotes: dict[tuple, Zygote] = {}
_lock = threading.Lock()  # kernels may be started from several threads (a Dask worker's)


def zygote(modules: list[str], environment: dict[str, str]) -> Zygote:
    """This process's zygote for these modules: started now if there is none (or it died)."""
    import atexit
    with _lock:
        key = tuple(modules)
        running = _zygotes.get(key)
        if running is None or not running.alive():
            if running is not None:
                running.stop()
            running = _zygotes[key] = Zygote(list(modules), environment)
            atexit.register(running.stop)
        return running


