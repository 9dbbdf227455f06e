"""The sandbox's command line: bubblewrap's arguments for a kernel, and the per-process limits prlimit sets on it.

What the sandbox holds and why is said in coursekit.sandbox, whose SandboxProvisioner starts every grading kernel
with `limited(sandbox_command(...), resource_limits(...))`; this module only builds those command lines.
"""
import os
import shutil
import sys
import sysconfig
from pathlib import Path

# What a Python kernel needs of /etc: the loader's cache, users and groups (getpwuid), time zone, certificates.
ETC_FILES = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
             "nsswitch.conf", "hosts", "ssl", "ca-certificates", "alternatives", "fonts", "mime.types"]
# System folders, shown read-only (on merged-/usr systems /bin, /lib... are symlinks into /usr, and stay so).
SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]


def bwrap() -> str | None:
    return shutil.which("bwrap")


def read_only_paths() -> list[str]:
    """The Python environment (a virtualenv and the Python it was made from) and the system's libraries."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(sysconfig.get_paths().get(name, "") for name in ("stdlib", "platstdlib", "purelib", "platlib"))
    # the real location of the interpreter a venv's python links to
    paths.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    paths = {p for p in paths if p and os.path.isdir(p)}
    return sorted(p for p in paths if not any(p != q and Path(p).is_relative_to(q) for q in paths))


def missing_parents(mount_points: list[str]) -> list[str]:
    """Folders above the mount points that the sandbox's skeleton (/, /usr, /tmp...) does not have yet, top first."""
    present = {"/", "/tmp", "/proc", "/dev", "/etc", *SYSTEM_DIRS}
    parents = set()
    for point in mount_points:
        for parent in Path(point).parents:
            if str(parent) in present or any(parent.is_relative_to(p) for p in present - {"/", "/tmp"}):
                continue
            if any(parent.is_relative_to(other) for other in mount_points if other != point and
                   Path(point).is_relative_to(other)):
                continue  # inside another mount point: it exists there already
            parents.add(str(parent))
    return sorted(parents, key=lambda p: (p.count("/"), p))


def sandbox_command(command: list[str], binds: list[tuple[str, str]], cwd: str, env: dict[str, str] | None = None,
                    uid: int = 65534, gid: int = 65534, tmp_size: int = 512 * 1024**2,
                    files: list[tuple[str, str]] = (), work_size: int | None = None,
                    private_folders: list[tuple[str, int]] = ()) -> list[str]:
    """`command` wrapped in bubblewrap. binds: (host path, sandbox path) pairs mounted read-write; files: read-only,
    mounted over what the sandbox would show there; work_size: `cwd` is an empty tmpfs of that many bytes;
    private_folders: (sandbox path, bytes) pairs, each an empty tmpfs of that size (files can be mounted into it)."""
    # Every namespace but the user namespace as root (setpriv below changes the uid for real); with it otherwise.
    namespaces = ["--unshare-user"] if os.geteuid() else []
    namespaces += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    args = [bwrap() or "bwrap", "--die-with-parent", *namespaces, "--hostname", "grader",
            "--proc", "/proc", "--dev", "/dev", "--size", str(tmp_size), "--perms", "1777", "--tmpfs", "/tmp", "--clearenv"]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            args += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            args += ["--ro-bind", directory, directory]
    # /etc is made by bubblewrap for the files below: as root it would be 0700, and the kernel could read none of
    # them (its certificates, time zone, fonts: matplotlib's fc-list printed "Fontconfig error" on stderr).
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    read_only = [(path, path) for path in read_only_paths()]
    # bubblewrap makes the missing parents of a mount point root-only (0700) when run as root: make them 0755
    # first, or the unprivileged kernel could not reach what is mounted below them.
    work = [(cwd, work_size)] if work_size is not None else []
    work += list(private_folders)
    for parent in missing_parents([inside for _, inside in read_only + binds] + [folder for folder, _ in work]):
        args += ["--perms", "0755", "--dir", parent]
    for host, inside in read_only:
        args += ["--ro-bind", host, inside]
    for host, inside in binds:
        args += ["--bind", host, inside]
    for folder, size in work:  # writable by the sandbox's user (whose uid bubblewrap cannot give a tmpfs), like /tmp
        args += ["--size", str(size), "--perms", "1777", "--tmpfs", folder]
    for host, inside in files:
        args += ["--ro-bind", host, inside]
    for name, value in (env or {}).items():
        args += ["--setenv", name, value]
    args += ["--chdir", cwd]
    if os.geteuid() == 0:
        # Root: bubblewrap builds the sandbox with root's rights (it can mount folders only root may enter), then
        # setpriv drops to an unprivileged uid for good: no capabilities left, none to gain (no_new_privs).
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--",
                 "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
                 "--no-new-privs", "--"]
    else:
        # An ordinary user cannot become another user: a user namespace maps the uid, on the host it is still yours.
        args += ["--uid", str(uid), "--gid", str(gid), "--"]
    return args + list(command)


def resource_limits(memory: int, processes: int, file_size: int) -> dict[str, int]:
    """A kernel's resource limits, by `resource` module name (0 leaves a limit unset; never a core dump)."""
    limits = {"RLIMIT_AS": memory, "RLIMIT_NPROC": processes, "RLIMIT_FSIZE": file_size}
    return {**{name: value for name, value in limits.items() if value > 0}, "RLIMIT_CORE": 0}


# util-linux prlimit's option for each limit
PRLIMIT_OPTIONS = {"RLIMIT_AS": "--as", "RLIMIT_NPROC": "--nproc", "RLIMIT_FSIZE": "--fsize", "RLIMIT_CORE": "--core"}


def limited(command: list[str], limits: dict[str, int]) -> list[str]:
    """`command` run under `limits` (resource_limits), set by util-linux prlimit."""
    return ["prlimit", *[f"{PRLIMIT_OPTIONS[name]}={value}" for name, value in limits.items()], "--", *command]


def kernel_path() -> str:
    """PATH inside the sandbox: the environment's scripts first, then the system's."""
    return os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
