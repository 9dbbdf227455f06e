"""A control group per grading sandbox: all of a kernel's processes together stay within one memory and pids limit.

Resource limits (setrlimit) are per process: three children of one kernel held 4 GiB of address space each.
A control group counts every process of the sandbox together, and the memory it counts includes the pages of its
tmpfs folders (its /tmp and working folder), so memory and disk are bounded by one number. When the group reaches
its memory limit, the kernel's out-of-memory killer ends the largest process *in the group*: a classmate's kernel,
in a group of its own, is never the one picked.

Both cgroup versions, detected at run time from /proc/self/mounts:

- v1 (a `memory` hierarchy, and `pids` when mounted): `<hierarchy>/<the grader's own group>/coursekit/<kernel>`,
  so the kernels stay inside whatever limits the grader itself runs under; memory.limit_in_bytes,
  memory.memsw.limit_in_bytes (when swap is accounted: no swap beyond the limit), pids.max;
- v2 (a unified hierarchy whose cgroup.controllers has `memory`): `<root>/coursekit/<kernel>` (a v2 group with
  processes cannot have limited children, so not under the grader's own group), with memory and pids enabled in
  the subtree; memory.max, memory.swap.max = 0, pids.max.

Creating groups needs root. Not root, or no usable hierarchy: `available()` says why, the sandbox logs it once and
keeps its per-process limits. A group is named after the grader's pid and start time: the next kernel removes the
groups of a grader that was killed (killing what is left in them first), as the sandbox does for its folders.
"""
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PARENT = "coursekit"  # the folder of the kernels' groups in each hierarchy


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    parents: dict[str, Path]  # v1: controller -> its parent folder; v2: {"unified": parent folder}


_found: list = []  # [(Hierarchy | None, reason | None)], detected once per process


def available() -> tuple["Hierarchy | None", str | None]:
    """The hierarchy kernels' groups go in, or (None, why not)."""
    if not _found:
        try:
            _found.append(_detect())
        except OSError as error:
            _found.append((None, f"cannot set up a control group: {error}"))
    return _found[0]


def _detect(proc: Path = Path("/proc/self")) -> tuple["Hierarchy | None", str | None]:
    """proc: where this process's `mounts` and `cgroup` are (a test gives others)."""
    if not (proc / "cgroup").exists():
        return None, "no control groups here (not Linux)"
    if os.geteuid() != 0:
        return None, "creating control groups needs root"
    mounts = [line.split() for line in (proc / "mounts").read_text().splitlines()]
    own = {}  # controller (or "" for v2) -> the grader's own group
    for line in (proc / "cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path
    v1 = {}
    for _, point, kind, options, *_ in mounts:
        if kind == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options.split(","):
                    v1[controller] = Path(point)
    if "memory" in v1:
        parents = {c: point / own.get(c, "/").lstrip("/") / PARENT for c, point in v1.items()}
        for parent in parents.values():
            parent.mkdir(exist_ok=True)
        return Hierarchy(1, parents), None
    for _, point, kind, *_ in mounts:
        if kind == "cgroup2" and "memory" in (Path(point) / "cgroup.controllers").read_text().split():
            root = Path(point)
            wanted = [c for c in ("memory", "pids") if c in (root / "cgroup.controllers").read_text().split()]
            parent = root / PARENT
            try:
                _enable(root, wanted)
                parent.mkdir(exist_ok=True)
                _enable(parent, wanted)
            except OSError as error:  # e.g. a container's root group that holds processes (EBUSY)
                return None, f"cannot enable {' and '.join(wanted)} for child groups in {root}: {error}"
            return Hierarchy(2, {"unified": parent}), None
    return None, "no cgroup v1 memory hierarchy and no cgroup v2 hierarchy with the memory controller"


def _enable(group: Path, controllers: list[str]) -> None:
    enabled = (group / "cgroup.subtree_control").read_text().split()
    missing = [c for c in controllers if c not in enabled]
    if missing:
        (group / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))


def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot): with the pid, names the process for good."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


class KernelGroup:
    """One kernel's group, in each hierarchy (v1: memory and pids; v2: one)."""

    def __init__(self, hierarchy: Hierarchy, folders: dict[str, Path]):
        self.hierarchy = hierarchy
        self.folders = folders

    @classmethod
    def create(cls, memory: int, processes: int) -> "KernelGroup":
        """A new group with these limits (0: none); OSError if it cannot be made."""
        hierarchy, reason = available()
        if hierarchy is None:
            raise OSError(reason)
        remove_abandoned(hierarchy)
        name = f"{os.getpid()}-{_start_time(os.getpid())}-{uuid.uuid4().hex[:8]}"
        group = cls(hierarchy, {c: parent / name for c, parent in hierarchy.parents.items()})
        try:
            for folder in group.folders.values():
                try:
                    folder.mkdir()
                except FileNotFoundError:  # v1: the last kernel of another grader just removed the parent
                    folder.parent.mkdir(exist_ok=True)
                    folder.mkdir()
            if hierarchy.version == 1:
                memory_folder = group.folders["memory"]
                if memory > 0:
                    (memory_folder / "memory.limit_in_bytes").write_text(str(memory))
                    if (memory_folder / "memory.memsw.limit_in_bytes").exists():  # swap accounted: none beyond it
                        (memory_folder / "memory.memsw.limit_in_bytes").write_text(str(memory))
                if processes > 0 and "pids" in group.folders:
                    (group.folders["pids"] / "pids.max").write_text(str(processes))
            else:
                folder = group.folders["unified"]
                if memory > 0:
                    (folder / "memory.max").write_text(str(memory))
                    if (folder / "memory.swap.max").exists():
                        (folder / "memory.swap.max").write_text("0")
                if processes > 0 and (folder / "pids.max").exists():
                    (folder / "pids.max").write_text(str(processes))
        except OSError:
            group.remove()
            raise
        return group

    @property
    def procs_files(self) -> list[str]:
        """The cgroup.procs files a process writes its pid into to join the group (in every hierarchy)."""
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def joined(self, command: list[str]) -> list[str]:
        """`command`, run by a shell that first moves itself into the group: everything it starts is in it."""
        script = " && ".join(f'echo $$ > "${i + 1}"' for i in range(len(self.procs_files)))
        return ["sh", "-c", f'{script} && shift {len(self.procs_files)} && exec "$@"', "coursekit-cgroup",
                *self.procs_files, *command]

    def _memory_file(self, v1: str, v2: str) -> Path:
        if self.hierarchy.version == 1:
            return self.folders["memory"] / v1
        return self.folders["unified"] / v2

    def peak_memory(self) -> int | None:
        """The most memory the group's processes (and its tmpfs files) held at once, in bytes (None: not known)."""
        try:
            return int(self._memory_file("memory.max_usage_in_bytes", "memory.peak").read_text())
        except (OSError, ValueError):
            return None  # v2 before Linux 5.19 has no memory.peak

    def oom_kills(self) -> int:
        """Processes of the group the out-of-memory killer ended (memory.oom_control / memory.events)."""
        try:
            text = self._memory_file("memory.oom_control", "memory.events").read_text()
        except OSError:
            return 0
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        """Kill what is left in the group, then remove it (v1: and the parent once empty, so that the grader's own
        group, which another program manages, keeps no folder of ours)."""
        _remove(list(self.folders.values()))
        if self.hierarchy.version == 1:
            for folder in self.folders.values():
                try:
                    folder.parent.rmdir()
                except OSError:  # another kernel's group is in it
                    pass


def _remove(folders: list[Path], timeout: float = 10) -> None:
    give_up = time.monotonic() + timeout
    pause = 0.0005  # the sandbox's init is often still ending when bubblewrap has: a short wait is enough
    for folder in folders:
        while folder.exists():
            try:
                pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            if pids and (folder / "cgroup.kill").exists():
                (folder / "cgroup.kill").write_text("1")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                folder.rmdir()
            except FileNotFoundError:
                break
            except OSError:  # EBUSY: processes still ending
                if time.monotonic() > give_up:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.05)


def remove_abandoned(hierarchy: Hierarchy) -> None:
    """Groups whose grader is gone (killed: it never cleaned up), with whatever still runs in them."""
    for parent in hierarchy.parents.values():
        try:
            groups = list(parent.iterdir())
        except FileNotFoundError:  # v1: removed with the last group
            continue
        for folder in groups:
            if not folder.is_dir():
                continue
            try:
                pid, started, _ = folder.name.split("-")
                alive = _start_time(int(pid)) == started
            except FileNotFoundError:
                alive = False
            except (OSError, ValueError):
                continue  # not a kernel's group of ours
            if not alive:
                _remove([folder], timeout=2)
