"""Every grading kernel runs in a bubblewrap sandbox: `SandboxProvisioner`, a jupyter_client kernel provisioner.

A student's notebook is code, and autograding runs it. Without a sandbox that code runs with the grader's rights: it
can rewrite the gradebook, delete a classmate's submission, read files outside the course and reach the network.
Here the kernel is started by bubblewrap (https://github.com/containers/bubblewrap, the sandbox under Flatpak;
Debian's `bubblewrap` package) and sees:

- no network: a network namespace of its own, with nothing in it but its own loopback (the host's 127.0.0.1
  is not reachable);
- a filesystem made of the Python environment and the system's libraries, read-only; as the folder its notebook
  runs in (the path of autograded/<student>/<assignment>/), an empty, size-limited tmpfs: nothing of the student's
  folder enters (nbclient sends the cells; files beside the notebook, symlinks above all, stay out); a private,
  size-limited /tmp; and the folder that holds its connection file and sockets: as root, the host's folder, root's
  again once the kernel is ready (`seal_connection_folder`, called by GuardedExecute before any cell runs); as an
  ordinary user, who cannot take back a folder from a kernel that runs as the same user, a tiny tmpfs of the
  sandbox's own, with the connection file mounted read-only into it (the grader reaches the sockets through
  /proc/PID/root). The gradebook, source/, the other
  students' files, the grader's home and the rest of the host are not there, and nothing it writes reaches the
  host's disk;
- its own process namespace: when the kernel ends, every process it started ends with it;
- as root (CI, a grading server): an unprivileged uid of its own, `first_uid` + n for the n-th kernel running at
  the same moment (a lock file per n, coursekit.uid_slots), with no capabilities and no way to gain any. Its own uid means its own
  process quota (`max_processes`): a fork bomb cannot stop a classmate's kernel, graded at the same time, from
  starting threads. As an ordinary user, bubblewrap cannot switch to another user: the kernel
  runs as your user in a user namespace, still without your files or the network;
- the limits: as root, a control group of its own (coursekit.cgroup): all its processes together, and the files in
  its tmpfs folders, hold at most `memory_limit` bytes of memory, and at most `max_processes` processes and threads.
  Per process as well (and only these where no control group can be made): `memory_limit` bytes of address space,
  `max_processes` processes for the sandbox user, `max_file_size` per file. `tmp_size` bytes of /tmp, `work_size`
  bytes of the working folder.

The kernel talks to the grader over Unix sockets (ZeroMQ's ipc transport) in a private folder, since no TCP port
of the host is reachable from inside. `coursekit.preprocessors.GuardedExecute` selects this provisioner for the
kernels it starts (plain `nbgrader autograde` with the course's config, and `coursekit grade`), and refuses to
grade when `unavailable_reason()` says the sandbox cannot run, unless `unsafe_no_sandbox` is set.
"""
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Integer, List, Unicode

from . import cgroup, warm
from .bubblewrap import bwrap, kernel_path, limited, resource_limits, sandbox_command
from .outcomes import Problem, ProblemKind
from .uid_slots import claim as claim_uid_slot

PROVISIONER_NAME = "coursekit-sandbox"  # the entry point in pyproject.toml

UNAVAILABLE_HELP = (
    "coursekit grades every notebook in a bubblewrap sandbox, so that a student's code cannot change grades, read "
    "or delete other students' work, or reach the network. It needs Linux and bubblewrap (Debian/Ubuntu: "
    "`sudo apt-get install bubblewrap`; `make test` installs it when run as root). To grade WITHOUT a sandbox "
    "(every submission then runs with your rights: only do this for work you trust), pass --unsafe-no-sandbox to "
    "`coursekit grade`, or --GuardedExecute.unsafe_no_sandbox=True to `nbgrader autograde`."
)


class SandboxUnavailable(RuntimeError):
    """No sandbox can run here, and grading without one was not asked for."""


_checked: dict[tuple, str | None] = {}
_group_unavailable_logged = False  # why kernels get no control group: said once per process


def unavailable_reason() -> str | None:
    """Why no sandbox can run here (None when one can): tried once per process with the sandbox's own options."""
    key = (os.geteuid() if hasattr(os, "geteuid") else None,)
    if key not in _checked:
        _checked[key] = _try_sandbox()
    return _checked[key]


def _try_sandbox() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"bubblewrap sandboxes need Linux; this is {sys.platform}."
    if bwrap() is None:
        return "bubblewrap (bwrap) is not installed."
    command = [*sandbox_command(["true"], binds=[], cwd="/"), ]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not start: {error}"
    if run.returncode != 0:
        return f"bubblewrap could not create a sandbox here: {run.stderr.strip()[-300:] or run.returncode}"
    return None


FOLDER_PREFIX = "coursekit-kernel-"
# As an ordinary user, the kernel's connection folder is a tmpfs of this size in its sandbox: room for its sockets.
PRIVATE_CONNECTION_FOLDER_SIZE = 1024**2


def mark_grader(folder: Path) -> None:
    """Record which process owns `folder` (its pid and start time), for remove_abandoned_folders."""
    (Path(folder) / "grader.pid").write_text(f"{os.getpid()} {psutil.Process().create_time()}")


def remove_abandoned_folders() -> None:
    """Private folders of kernels, and of warm-kernel templates, whose grader was killed (it never cleaned up):
    removed by the next kernel's start."""
    temporary = Path(tempfile.gettempdir())
    for folder in [*temporary.glob(f"{FOLDER_PREFIX}*"), *temporary.glob(f"{warm.FOLDER_PREFIX}*")]:
        try:
            pid, started = (folder / "grader.pid").read_text().split()
            alive = psutil.Process(int(pid)).create_time() == float(started)
        except psutil.NoSuchProcess:
            alive = False
        except (OSError, ValueError, psutil.Error):
            continue  # not ours to judge (being created, or another user's)
        if not alive:
            shutil.rmtree(folder, ignore_errors=True)


class SandboxProvisioner(LocalProvisioner):
    """LocalProvisioner, with the kernel started inside a bubblewrap sandbox (see the module's docstring)."""

    first_uid = Integer(
        1_000_000_000,
        help="When grading as root, kernels run as uid/gid first_uid + n, n < uid_slots: far above the ids of people, "
             "system services and containers' sub-ids. A uid of its own per kernel running at the same moment.",
    ).tag(config=True)
    uid_slots = Integer(256, help="How many kernels may run at the same moment on this machine.").tag(config=True)
    memory_limit = Integer(
        4 * 1024**3,
        help="Bytes of memory a grading kernel may use (Linux; 0: no limit): per process, as address space (a "
             "student's loop that keeps allocating gets a MemoryError in its own cell), and, as root, for all the "
             "kernel's processes and the files in its tmpfs folders together (coursekit.cgroup: the out-of-memory "
             "killer ends a process of that kernel, never another student's kernel or the grader). Also the address "
             "space limit of an unsandboxed kernel (GuardedExecute.unsafe_no_sandbox). The course's notebooks use "
             "about 1.1 GB of address space (90 MB resident) when graded.",
    ).tag(config=True)
    max_processes = Integer(
        1024, help="Processes and threads the sandbox user may have at once (0: no limit): stops a fork bomb.",
    ).tag(config=True)
    max_file_size = Integer(1024**3, help="Largest file the kernel may write, in bytes (0: no limit).").tag(config=True)
    tmp_size = Integer(512 * 1024**2, help="Size of the sandbox's private /tmp, in bytes.").tag(config=True)
    work_size = Integer(
        512 * 1024**2, help="Size of the kernel's working folder, in bytes: a tmpfs at the notebook folder's path, "
                            "empty at start (nothing of the student's folder enters the sandbox).",
    ).tag(config=True)
    control_group = Bool(
        True, help="As root, a control group per kernel (coursekit.cgroup): memory_limit and max_processes hold for "
                   "all its processes together, tmpfs files included. False, not root or no usable cgroup "
                   "hierarchy: per-process limits only.",
    ).tag(config=True)
    passed_environment = List(
        Unicode(), ["LANG", "LC_ALL", "TZ"], help="Environment variables the kernel keeps; all others are cleared.",
    ).tag(config=True)

    warm = Bool(
        True,
        help="Start each grading kernel as a fresh fork of a process that has already imported ipykernel and "
             "preload_modules, inside the same sandbox as a cold kernel (coursekit.warm): about half the time and CPU "
             "of a notebook is a cold kernel's start. Needs root; elsewhere kernels start cold (`coursekit grade "
             "--cold-kernels`: always cold).",
    ).tag(config=True)
    preload_modules = List(
        Unicode(),
        help="Modules a warm kernel has already imported when it starts: the ones the course's notebooks import. "
             "A module missing from the environment stops grading with an error that names it.",
    ).tag(config=True)

    _folder: Path | None = None
    _group: "cgroup.KernelGroup | None" = None  # the kernel's control group, while it runs
    _kernel_argv: list[str] | None = None  # a warm kernel's command line, run by the zygote instead of bubblewrap
    _kernel_pid: tuple[int, float] | None = None  # a warm kernel's pid on the host, and when it started
    _private_connection = False  # an ordinary user's kernel: its sockets are in a tmpfs of its sandbox
    memory_problem: Problem | None = None  # set at cleanup when the out-of-memory killer ended kernel processes

    async def pre_launch(self, **kwargs):
        km = self.parent
        # A private folder per kernel: its connection file and sockets. The folder itself is root's (0700) when
        # grading as root: only bubblewrap, as root, reaches into it.
        remove_abandoned_folders()
        self._folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX)).resolve()
        mark_grader(self._folder)
        connection = self._folder / "connection"
        # As an ordinary user the kernel runs as you: a host folder it may write in could not be taken back from it
        # (seal_connection_folder needs root) and could fill your disk. Its sockets go into a tmpfs of its sandbox,
        # which the host's `connection` reaches as a link made once the sandbox exists (launch_kernel); the
        # connection file, beside it, is mounted read-only. (Warm kernels need root: they never take this way.)
        self._private_connection = os.geteuid() != 0
        km.transport = "ipc"
        km.ip = str(connection / "kernel")
        if self._private_connection:
            km.connection_file = str(self._folder / "kernel.json")
        else:
            connection.mkdir()
            km.connection_file = str(connection / "kernel.json")
        notebook_folder = os.path.realpath(kwargs.get("cwd") or os.getcwd())

        kwargs = await super().pre_launch(**kwargs)  # writes the connection file, builds the kernel's command
        kernel_command = kwargs["cmd"]
        self._kernel_argv = self._warm_argv(kernel_command)
        if self._kernel_argv is not None:
            # A warm kernel: the sandbox runs the waiter, the zygote puts the kernel in it (coursekit.warm).
            os.mkfifo(connection / "kernel.started", 0o600)
            kernel_command = [sys.executable, "-I", "-S", "-c", warm.WARM_WAITER, str(connection / "kernel.started")]
        uid = gid = 65534  # as an ordinary user: the id inside the user namespace (nobody)
        binds_read_only = []
        if os.geteuid() == 0:
            uid = gid = self.first_uid + self._claim_slot()
            for path in [connection, *connection.iterdir()]:
                os.chown(path, uid, gid, follow_symlinks=False)
            # Who the kernel is, for getpass/pwd: a user "student" with no home but /tmp.
            (self._folder / "passwd").write_text(f"root:x:0:0::/root:/usr/sbin/nologin\n"
                                                 f"student:x:{uid}:{gid}::/tmp:/usr/sbin/nologin\n")
            (self._folder / "group").write_text(f"root:x:0:\nstudent:x:{gid}:\n")
            binds_read_only = [(str(self._folder / "passwd"), "/etc/passwd"), (str(self._folder / "group"), "/etc/group")]

        environment = {name: os.environ[name] for name in self.passed_environment if name in os.environ}
        environment.update(HOME="/tmp", PATH=kernel_path(), MPLCONFIGDIR="/tmp")
        self._identity = (uid, gid, environment, notebook_folder)
        binds, private_folders = [(str(connection), str(connection))], []
        if self._private_connection:
            private_folders = [(str(connection), PRIVATE_CONNECTION_FOLDER_SIZE)]
            binds, binds_read_only = [], [*binds_read_only, (km.connection_file, km.connection_file)]
        command = sandbox_command(
            kernel_command, binds=binds, cwd=notebook_folder, env=environment, uid=uid, gid=gid,
            tmp_size=self.tmp_size, files=binds_read_only, work_size=self.work_size, private_folders=private_folders)
        kwargs["cmd"] = limited(command, self._limits())
        self._group = self._control_group()
        if self._group is not None:  # joined before bubblewrap starts: the whole sandbox is in it
            kwargs["cmd"] = self._group.joined(kwargs["cmd"])
        kwargs["cwd"] = str(self._folder)  # bubblewrap's own working folder, on the host
        kwargs["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # for prlimit, setpriv: nothing else
        return kwargs

    def _control_group(self) -> "cgroup.KernelGroup | None":
        global _group_unavailable_logged
        if not self.control_group:
            return None
        try:
            return cgroup.KernelGroup.create(self.memory_limit, self.max_processes)
        except OSError as error:
            if not _group_unavailable_logged:
                _group_unavailable_logged = True
                self.log.warning("coursekit: no control group per kernel (%s): memory and process limits are per "
                                 "process only", error)
            return None

    def _limits(self) -> dict[str, int]:
        return resource_limits(self.memory_limit, self.max_processes, self.max_file_size)

    def _warm_argv(self, command: list[str]) -> list[str] | None:
        """The arguments of ipykernel_launcher in `command`, when this kernel is to start warm (None: cold)."""
        if not self.warm:
            return None
        if os.geteuid() != 0:
            self.log.info("coursekit: warm kernels need root (to enter a sandbox's namespaces); this kernel starts cold")
            return None
        if command[1:3] != ["-m", "ipykernel_launcher"]:
            self.log.warning("coursekit: not an ipykernel command line, this kernel starts cold: %s", command)
            return None
        return ["ipykernel_launcher", *command[3:]]

    def _zygote(self) -> "warm.Zygote":
        # PYDEVD_DISABLE_FILE_VALIDATION: ipykernel's debugger, preloaded, would warn about frozen modules on import
        environment = {"PATH": kernel_path(), "HOME": "/tmp", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        return warm.zygote([*warm.KERNEL_MODULES, *self.preload_modules], environment)

    async def launch_kernel(self, cmd: list[str], **kwargs):
        connection_info = await super().launch_kernel(cmd, **kwargs)  # bubblewrap: a cold kernel, or the waiter
        if self._private_connection:
            # The sockets are in the sandbox's own tmpfs: the grader (the same user, owner of the sandbox's user
            # namespace) reaches them through the sandbox's root as /proc shows it, by the same path as the kernel
            # (the connection file is not changed: jupyter_client would write it again while the kernel reads it).
            # Until bubblewrap has entered its new root the link leads nowhere, and ZeroMQ connects again.
            connection = self._folder / "connection"
            os.symlink(f"/proc/{await self._sandbox_init_pid()}/root{connection}", connection)
        if self._kernel_argv is not None:
            uid, gid, environment, cwd = self._identity
            # the same limits prlimit set on the sandbox (the zygote's fork did not inherit them)
            request = {"bwrap_pid": self.process.pid, "fifo": str(self._folder / "connection" / "kernel.started"),
                       "uid": uid, "gid": gid, "env": environment, "cwd": cwd, "limits": self._limits(),
                       "argv": self._kernel_argv, "cgroup": self._group.procs_files if self._group else []}
            zygote = self._zygote()
            pid = await zygote.start_kernel(request)
            if not zygote.announced:
                zygote.announced = True
                self.log.info("coursekit: warm kernels, forked from template process %d (%d modules preloaded)",
                              zygote.process.pid, len(zygote.modules))
            self._kernel_pid = (pid, psutil.Process(pid).create_time())
        return connection_info

    async def _sandbox_init_pid(self, timeout: float = 10) -> int:
        """The host pid of bubblewrap's first process inside the sandbox (its pid 1)."""
        bubblewrap = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout
        while not (children := bubblewrap.children()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bubblewrap started no sandbox (exit status {self.process.poll()})")
            await asyncio.sleep(0.005)
        return children[0].pid

    async def send_signal(self, signum: int) -> None:
        """An interrupt goes to the kernel alone: bubblewrap itself would die of it, and the kernel with it."""
        if signum == signal.SIGINT and (kernel := self._kernel_process()) is not None:
            try:
                kernel.send_signal(signum)
            except psutil.NoSuchProcess:
                pass
            return
        await super().send_signal(signum)

    def _kernel_process(self) -> "psutil.Process | None":
        """bubblewrap -> its init in the sandbox -> the kernel (the init's oldest child; later ones are orphans).
        A warm kernel: the pid the zygote gave, if that process is still in this sandbox."""
        try:
            if self._kernel_pid is not None:
                pid, started = self._kernel_pid
                kernel = psutil.Process(pid)
                return kernel if kernel.create_time() == started else None
            init = psutil.Process(self.process.pid).children()
            children = init[0].children() if init else []
        except (psutil.NoSuchProcess, AttributeError):
            return None
        return min(children, key=lambda p: p.create_time(), default=None)

    _slot: int | None = None  # the file descriptor of the slot's lock, held while the kernel runs

    def _claim_slot(self) -> int:
        """The first n < uid_slots whose lock no other kernel on this machine holds; held until cleanup."""
        n, self._slot = claim_uid_slot(self.uid_slots)
        return n

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart)
        if self._group is not None:  # a restart makes a new one
            self._report_memory(self._group)
            self._group.remove()
            self._group = None
        if self._folder is not None and not restart:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        if self._slot is not None and not restart:
            os.close(self._slot)  # releases the lock: the uid is free for the next kernel
            self._slot = None

    def seal_connection_folder(self) -> None:
        """Once the kernel is ready (its sockets are bound), its connection folder, the one folder of the host's
        disk it could write to, becomes root's again: student code, which runs only after this, cannot fill the
        host's disk through it. (As an ordinary user the folder stays the kernel's: it is yours too.)"""
        if self._folder is None or os.geteuid() != 0:
            return
        connection = self._folder / "connection"
        for path in [*connection.iterdir(), connection]:
            if path.is_file() and not path.is_symlink():
                os.chown(path, 0, 0)
                os.chmod(path, 0o644)
        os.chown(connection, 0, 0, follow_symlinks=False)
        os.chmod(connection, 0o755)

    def out_of_memory_kills(self) -> int:
        """How many of the kernel's processes the out-of-memory killer has ended so far (0 without a group)."""
        return self._group.oom_kills() if self._group is not None else 0

    def _report_memory(self, group: "cgroup.KernelGroup") -> None:
        """A kernel whose processes the out-of-memory killer ended is reported as out of memory, not as a kernel
        that died for no reason (coursekit.diagnosis puts this first). A provisioner has no nbconvert resources: it
        keeps the problem in `memory_problem`, which GuardedExecute reports once the kernel is cleaned up."""
        kills, peak = group.oom_kills(), group.peak_memory()
        self.log.debug("coursekit: the kernel's sandbox held at most %s bytes of memory", peak)
        if kills:
            limit = f"{self.memory_limit / 1024**3:.3g} GiB"
            self.memory_problem = Problem(
                ProblemKind.OUT_OF_MEMORY, f"the kernel's processes together reached its memory limit ({limit}, "
                f"c.SandboxProvisioner.memory_limit, files in its folder and /tmp included): {kills} of them killed")
