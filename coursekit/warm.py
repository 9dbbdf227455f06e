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
cold (`SandboxProvisioner` logs why). This module's top level imports only the standard library: `python -m
coursekit.warm` is the zygote, and everything it imports ends up in every kernel.
"""
import ctypes
import errno
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading

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

# Namespaces a kernel enters, mount last: after it, /proc/<pid> of the host is gone.
NAMESPACES = {"ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000, "cgroup": 0x02000000, "pid": 0x20000000,
              "mnt": 0x00020000}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38

_libc = ctypes.CDLL(None, use_errno=True)
SET_BY_MODULES: dict[str, str] = {}  # in the zygote: environment variables the preloaded modules set


class WarmKernelError(RuntimeError):
    """The zygote could not start, or could not start a kernel (the message says why)."""


# ---------------------------------------------------------------------------------------------------------------
# The zygote: `python -m coursekit.warm CONTROL_SOCKET STATUS_FD MODULE...`, started by `Zygote` below.
# Its stdin is a pipe from the grading process: when that closes (the grader ended, however), the zygote ends too.

def serve(control: str, status_fd: int, modules: list[str]) -> None:
    for fd in (0, 1, 2):  # a grader without stdout: keep 0-2 taken, or a later pipe() would land there
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # `python -m` put the zygote's working folder first; a kernel would not have it
    status = os.fdopen(status_fd, "w")
    before = dict(os.environ)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # an ImportError, or whatever the module raised while loading
            status.write(json.dumps({"error": f"cannot preload module {module!r}: {type(error).__name__}: {error}"}))
            status.close()
            sys.exit(1)
    # What the modules put into the environment as they loaded (debugpy does), a kernel keeps: a cold one would
    # have set it too, after the sandbox cleared the rest.
    global SET_BY_MODULES
    SET_BY_MODULES = {name: value for name, value in os.environ.items() if before.get(name) != value}
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:  # a fork only copies the thread that forks: a kernel would lack the others
        status.write(json.dumps({"error": f"the preloaded modules started {threads - 1} thread(s); a process with "
                                          "threads cannot be forked safely. Preload fewer modules."}))
        status.close()
        sys.exit(1)
    import gc
    gc.freeze()  # what the modules made stays out of every kernel's collections (and its pages shared)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(control)
    os.chmod(control, 0o600)
    listener.listen(64)
    status.write(json.dumps({"ready": os.getpid()}))
    status.close()
    try:
        _serve_requests(listener)
    finally:  # its folder, also when the grader died without cleaning up
        import shutil
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)


def _serve_requests(listener: socket.socket) -> None:
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [], 1.0)
        _reap()
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1024):
            return  # the grader is gone
        if listener in readable:
            connection, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                code = 1
                try:
                    code = _start_kernel(connection)
                finally:
                    os._exit(code)
            connection.close()


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _start_kernel(connection: socket.socket) -> int:
    """In a fork of the zygote: enter the sandbox, fork the kernel into it, answer {"pid": kernel's host pid}."""
    reply = connection.makefile("w")
    try:
        request = json.loads(connection.makefile("r").readline())
        fifo = _open_for_writing(request["fifo"], request["bwrap_pid"], deadline=request.get("timeout", 60))
        init, waiter = _init_and_waiter(request["bwrap_pid"])
        for procs in request.get("cgroup", []):  # the sandbox's control group (coursekit.cgroup), while still root
            with open(procs, "w") as group:
                group.write(str(os.getpid()))
        host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)  # after entering, /proc is the sandbox's
        _enter_sandbox(waiter, request["cwd"])
        ready_read, ready_write = os.pipe()
        # Fork twice: the middle process ends at once, so the kernel's parent is the sandbox's init (as for a cold
        # kernel, which also reaps it), not this process outside the sandbox.
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                os.close(ready_read)
                connection.close()
                _become_kernel(request, fifo, ready_write)  # never returns
            os._exit(0)
        os.waitpid(middle, 0)
        os.close(ready_write)
        os.close(fifo)
        answer = os.read(ready_read, 4096).decode() or "the kernel process ended before it could start"
        if not answer.startswith("ok "):
            raise WarmKernelError(answer)
        reply.write(json.dumps({"pid": _host_pid(host_proc, init, int(answer.split()[1]))}) + "\n")
    except Exception as error:
        reply.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")
    reply.close()
    return 0


def _host_pid(host_proc: int, init: int, sandbox_pid: int) -> int:
    """The host's pid of the child of `init` that is `sandbox_pid` in the sandbox (NSpid: host's first, own last)."""
    for entry in os.listdir(host_proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.open(f"{entry}/status", os.O_RDONLY, dir_fd=host_proc)) as status:
                fields = dict(line.split(":", 1) for line in status.read().splitlines() if ":" in line)
        except OSError:
            continue
        if int(fields["PPid"]) == init and int(fields["NSpid"].split()[-1]) == sandbox_pid:
            return int(entry)
    raise WarmKernelError(f"the kernel (pid {sandbox_pid} in its sandbox) is not in the sandbox")


def _open_for_writing(fifo: str, bwrap_pid: int, deadline: float) -> int:
    """Open the waiter's fifo once the waiter has opened it: then the sandbox is set up and its command runs."""
    import errno
    import time
    give_up = time.monotonic() + deadline
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if not _running(bwrap_pid):
                raise WarmKernelError("the sandbox ended before it was ready (see bubblewrap's message above)") from None
            if time.monotonic() > give_up:
                raise WarmKernelError(f"the sandbox was not ready after {deadline:g} s") from None
            time.sleep(0.002)
            continue
        os.set_blocking(fd, True)
        return fd


def _running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _init_and_waiter(bwrap_pid: int) -> tuple[int, int]:
    """bubblewrap -> its init (pid 1 of the sandbox) -> the waiter: their pids."""
    import psutil
    descendants = psutil.Process(bwrap_pid).children(recursive=True)  # breadth first
    if len(descendants) < 2:
        raise WarmKernelError(f"the sandbox (bwrap pid {bwrap_pid}) has no waiter process")
    return descendants[0].pid, descendants[1].pid


def _enter_sandbox(waiter: int, cwd: str) -> None:
    descriptors = {name: os.open(f"/proc/{waiter}/ns/{name}", os.O_RDONLY) for name in NAMESPACES
                   if os.path.exists(f"/proc/{waiter}/ns/{name}")}
    root = os.open(f"/proc/{waiter}/root", os.O_RDONLY | os.O_DIRECTORY)
    for name, fd in descriptors.items():
        if _libc.setns(fd, NAMESPACES[name]) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({name}): {os.strerror(error)}")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    os.chdir(cwd)


def _become_kernel(request: dict, fifo: int, ready: int) -> None:
    """The kernel process, in the sandbox's PID namespace: drop root, tell the waiter, run ipykernel."""
    try:
        os.setsid()
        import resource
        for name, value in request["limits"].items():  # as prlimit sets them for a cold kernel
            limit = getattr(resource, name)
            resource.setrlimit(limit, (value, value))
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
        for capability in range(last + 1):
            if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
                raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {capability})")  # EINVAL: not in this kernel
        os.setgroups([])
        os.setresgid(request["gid"], request["gid"], request["gid"])
        os.setresuid(request["uid"], request["uid"], request["uid"])  # from root to another uid: capabilities go
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check_no_capabilities()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.set_inheritable(fifo, False)
        os.closerange(3, min(fifo, ready))
        os.closerange(max(fifo, ready) + 1, 65536)
        os.closerange(min(fifo, ready) + 1, max(fifo, ready))
        os.write(fifo, f"{os.getpid()}\n".encode())
        os.close(fifo)
        os.environ.clear()
        os.environ.update({**request["env"], **SET_BY_MODULES, "PWD": request["cwd"]})  # PWD: as bubblewrap sets it
        os.chdir(request["cwd"])
        import random
        random.seed()  # the fork copied the zygote's generator: each kernel draws its own numbers
        sys.argv = list(request["argv"])
    except BaseException as error:
        os.write(ready, f"{type(error).__name__}: {error}".encode())
        os._exit(1)
    os.write(ready, f"ok {os.getpid()}".encode())
    os.close(ready)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 0
    try:
        from ipykernel import kernelapp  # what ipykernel_launcher runs
        kernelapp.launch_new_instance()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        # Why: ipykernel's close() (an atexit function) stops the IOPub thread before the control thread, which may
        # still be finishing the shutdown request (its last flush of stdout then waits for the stopped IOPub thread
        # until the grader's SIGTERM, 2.5 s later). Let the control thread end first. Removable when ipykernel's
        # close() stops the control thread before IOPub (ipykernel 7.4 does not).
        app = getattr(sys.modules.get("ipykernel.kernelapp"), "IPKernelApp", None)
        control = getattr(app.instance(), "control_thread", None) if app is not None and app.initialized() else None
        if control is not None and control.is_alive():
            control.stop()
            control.join(2)
        import atexit
        atexit._run_exitfuncs()  # noqa: SLF001 (what the interpreter would run at exit; this fork must not return)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _check_no_capabilities() -> None:
    """The kernel must hold no capability at all, as under setpriv --inh-caps=-all (root's inheritable set is
    normally empty: if it is not, refuse rather than run a student's code with it), and its bounding set is empty."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":\t", 1) for line in status.read().splitlines() if ":\t" in line)
    held = {name: fields[name].strip() for name in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd") if name in fields}
    if any(int(value, 16) for value in held.values()):
        raise PermissionError(f"the kernel process still holds capabilities: {held}")


# ---------------------------------------------------------------------------------------------------------------
# The grading process's side: one zygote per list of modules, started on first use, ended with the process.

class Zygote:
    """A running zygote: `start_kernel(request)` asks it for a kernel in a sandbox, and answers the kernel's pid."""

    def __init__(self, modules: list[str], environment: dict[str, str]):
        import subprocess
        import tempfile
        self.modules = modules
        self.folder = tempfile.mkdtemp(prefix="coursekit-zygote-")  # 0700: the grader's alone
        self.control = os.path.join(self.folder, "control")
        status_read, status_write = os.pipe()
        # stdin is the lifeline (see serve); stdout and stderr are the grader's, as a cold kernel's are.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coursekit.warm", self.control, str(status_write), *modules],
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


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
