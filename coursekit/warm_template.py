"""The warm-kernel template process (the "zygote"): `python -m coursekit.warm_template CONTROL_SOCKET STATUS_FD
MODULE...`, started by `coursekit.warm.Zygote`. It imports the modules once, then for each request on its control
socket forks a process that enters the requested sandbox and becomes a kernel there (coursekit.warm_entry).

Separate from coursekit.warm (the grading process's side) because this module runs in another process, as root, and
everything it imports at start is in every kernel forked from it: its top level imports only the standard library
and coursekit.warm_entry, never the grader's side. Its stdin is a pipe from the grading process: when that closes
(the grader ended, however), the template ends too.
"""
import importlib
import json
import os
import select
import socket
import sys

from .warm_entry import become_kernel, enter_sandbox

SET_BY_MODULES: dict[str, str] = {}  # in the zygote: environment variables the preloaded modules set


class WarmKernelError(RuntimeError):
    """The zygote could not start, or could not start a kernel (the message says why)."""


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
        enter_sandbox(waiter, request["cwd"])
        ready_read, ready_write = os.pipe()
        # Fork twice: the middle process ends at once, so the kernel's parent is the sandbox's init (as for a cold
        # kernel, which also reaps it), not this process outside the sandbox.
        middle = os.fork()
        if middle == 0:
            if os.fork() == 0:
                os.close(ready_read)
                connection.close()
                become_kernel(request, fifo, ready_write, SET_BY_MODULES)  # never returns
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
                raise WarmKernelError("the sandbox ended before it was ready (bubblewrap's message is on the grading "
                                      "process's stderr: `coursekit grade --verbose` shows it with the submission)"
                                      ) from None
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


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
