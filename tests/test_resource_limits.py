"""Resources per kernel, not per process (issue 19): a submission fills neither the grader's memory nor its disk.

A class is graded with coursekit.grading.grade_assignment, once with warm kernels and once with cold ones. Hostile
students hand in the blank Section 1 notebook with one attack in its first answer cell; honest students, graded in
the same run by the same two workers, keep full marks. While the class is graded, a sampler watches from outside:
each kernel's control group (its peak memory, read from the kernel's own counter, and which student it is) and the
size of what grading keeps on the host's disk (autograded/ and the sandboxes' private folders).

The course's config sets a kernel memory limit of 2 GiB and a 768 MiB working folder for these tests, so that even a
failing limit cannot take a 24 GiB machine down: the attacks try at most 3 GiB of memory and 3 GiB of files each.
"""
import os
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from traitlets.config import Config

from coursekit import cgroup
from coursekit import testing as subs
from coursekit.grading import grade_assignment
from coursekit.outcomes import ProblemKind
from coursekit.testing import make_course_folder

pytestmark = pytest.mark.slow

ASSIGNMENT = "01-async-database"
MEMORY_LIMIT = 2 * 1024**3
WORK_SIZE = 768 * 1024**2
TMP_SIZE = 512 * 1024**2
CONFIG = f"""
# tests/test_resource_limits.py
c.SandboxProvisioner.memory_limit = {MEMORY_LIMIT}
c.SandboxProvisioner.work_size = {WORK_SIZE}
c.SandboxProvisioner.tmp_size = {TMP_SIZE}
"""

# Files into the folder of the kernel's connection file (the one folder of the host it sees) and into the
# connection file itself; three 1 GiB files into the working folder (the notebook's folder), then three into /tmp:
# the working folder stops at its size; /tmp fails in the cell with the error.
FILLS_THE_DISK = """
    import os
    from ipykernel.kernelapp import IPKernelApp
    written = {}
    def fill(folder):
        chunk = b"x" * (16 * 1024**2)
        written[folder] = 0
        for n in range(3):
            with open(os.path.join(folder, f"fill-{n}.bin"), "wb") as file:
                for _ in range(64):
                    file.write(chunk)
                    file.flush()
                    written[folder] += len(chunk)
    connection_file = IPKernelApp.instance().connection_file
    for what, action in (("connection folder", lambda: fill(os.path.dirname(connection_file))),
                         ("connection file", lambda: open(connection_file, "ab").write(b"x" * 2**20))):
        try:
            action()
            print(f"ATTACK {what}: written")
        except OSError as error:
            print(f"ATTACK {what}: {type(error).__name__}")
    try:
        fill(".")
    except OSError as error:
        print(f"ATTACK working folder: stopped after {written['.'] // 2**20} MiB: {error.strerror}")
    print("ATTACK /tmp: starting")
    fill("/tmp")
"""

# Three child processes of the kernel, started by a library (multiprocessing, fresh interpreters), hold 1 GiB each
# at the same time: 3 GiB in all, each far below the per-process limit of 2 GiB of address space.
CHILDREN_HOLD_MEMORY = """
    import multiprocessing
    spawn = multiprocessing.get_context("spawn")
    hold = "import time; block = bytearray(1024**3); time.sleep(8)"
    children = [spawn.Process(target=exec, args=(hold,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    print("ATTACK children's exit codes:", [child.exitcode for child in children])
"""

# No process at all: 768 MiB in the kernel itself (below its own 2 GiB of address space), then files in the
# working folder and /tmp (below their own sizes): together beyond the kernel's memory limit.
MEMORY_AND_FILES = """
    import os
    block = bytearray(768 * 1024**2)
    chunk = b"x" * (16 * 1024**2)
    for folder, size in ((".", 760), ("/tmp", 500)):
        with open(os.path.join(folder, "fill.bin"), "wb") as file:
            for _ in range(size // 16):
                file.write(chunk)
                file.flush()
    print("ATTACK memory and files: all held")
"""

# An honest student who also keeps a SQLite database in the notebook's folder and one in a mkdtemp() folder.
SQLITE_FILES = """
    import sqlite3, tempfile, os
    for folder in (".", tempfile.mkdtemp()):
        with sqlite3.connect(os.path.join(folder, "notes.db")) as db:
            db.execute("CREATE TABLE IF NOT EXISTS note (text)")
            db.execute("INSERT INTO note VALUES ('kept')")
        with sqlite3.connect(os.path.join(folder, "notes.db")) as db:
            assert db.execute("SELECT text FROM note").fetchall() == [("kept",)]
    print("SQLITE ok")
"""

ATTACKS = {"fills-the-disk": FILLS_THE_DISK, "children-hold-memory": CHILDREN_HOLD_MEMORY,
           "memory-and-files": MEMORY_AND_FILES}


def needs_control_groups():
    hierarchy, reason = cgroup.available()
    if hierarchy is None:
        pytest.skip(f"no control group per kernel here: {reason}")
    return hierarchy


def submission_with_code(code: str, answered: bool) -> dict:
    """The blank notebook (or the correct one: answered) with `code` first in its first answer cell."""
    notebook = subs.correct_submission(ASSIGNMENT) if answered else subs.blank_submission(ASSIGNMENT)
    first = next(iter(subs.autograded_exercises(notebook)))
    answer = subs.solution_answers(ASSIGNMENT)[first] if answered else ""
    return subs.with_answers(notebook, {first: textwrap.dedent(code).strip() + "\n" + answer})


def folder_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Watcher:
    """Samples, every 0.1 s while grading runs: each kernel group's peak memory (by student) and the host's disk."""

    def __init__(self, course: Path, hierarchy: "cgroup.Hierarchy | None"):
        self.course, self.hierarchy = course, hierarchy
        self.peaks: dict[str, int] = {}  # student -> the highest peak of the student's kernel groups
        self.students: dict[str, str] = {}  # group folder -> student
        self.seen: dict[str, tuple[float, float]] = {}  # student -> when the first and last sample saw its group
        self.disk = 0  # the most bytes autograded/ and the sandboxes' host-side folders held at once
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _memory_folder(self) -> Path | None:
        if self.hierarchy is None:
            return None
        return self.hierarchy.parents["memory" if self.hierarchy.version == 1 else "unified"]

    def _run(self):
        while self.running:
            self._sample()
            time.sleep(0.1)

    def _sample(self):
        folders = list(Path(tempfile.gettempdir()).glob("coursekit-kernel-*"))
        self.disk = max(self.disk, folder_size(self.course / "autograded") + sum(map(folder_size, folders)))
        parent = self._memory_folder()
        if parent is None:
            return
        try:
            groups = list(parent.iterdir())
        except FileNotFoundError:  # v1: removed with the last group
            return
        for group in groups:
            if not group.is_dir():
                continue
            try:
                student = self.students.get(str(group)) or self._student(group)
                peak = int((group / ("memory.max_usage_in_bytes" if self.hierarchy.version == 1 else
                                     "memory.peak")).read_text())
            except (OSError, ValueError):
                continue
            if student:
                self.students[str(group)] = student
                self.peaks[student] = max(self.peaks.get(student, 0), peak)
                self.seen[student] = (self.seen.get(student, (time.monotonic(),))[0], time.monotonic())

    def _student(self, group: Path) -> str | None:
        """The student whose notebook the group's sandbox runs: from bubblewrap's --chdir <course>/autograded/..."""
        marker = str(self.course / "autograded") + "/"
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            for argument in arguments:
                text = argument.decode(errors="replace")
                if text.startswith(marker):
                    return text[len(marker):].split("/")[0]
        return None

    def stop(self):
        self.running = False
        self.thread.join()
        self._sample()


@pytest.fixture(scope="module", params=["warm", "cold"])
def limited_class(request, tmp_path_factory):
    course = make_course_folder(tmp_path_factory.mktemp(f"limits-{request.param}"), [ASSIGNMENT])
    with (course / "nbgrader_config.py").open("a") as config:
        config.write(CONFIG)
    students = {
        "honest-1": subs.correct_submission(ASSIGNMENT),
        "honest-sqlite": submission_with_code(SQLITE_FILES, answered=True),
        **{name: submission_with_code(attack, answered=False) for name, attack in ATTACKS.items()},
    }
    for student, notebook in students.items():
        subs.write_submission(course, student, ASSIGNMENT, notebook)
    hierarchy, _ = cgroup.available()
    watcher = Watcher(course, hierarchy)
    # One worker takes the longest attack; the other grades the honest students and the other attacks meanwhile.
    order = ["children-hold-memory", "honest-1", "memory-and-files", "honest-sqlite", "fills-the-disk"]
    try:
        results = {r.student: r for r in grade_assignment(
            course, ASSIGNMENT, students=order,
            config=Config({"Grading": {"jobs": 2}, "Execute": {"timeout": 60},
                           "SandboxProvisioner": {"warm": request.param == "warm"}}))}
    finally:
        watcher.stop()
    return {"course": course, "results": results, "watcher": watcher, "kernels": request.param}


def printed(course: Path, student: str) -> tuple[str, list[dict]]:
    """What the first answer cell of the student's graded notebook printed, and its errors."""
    notebook = subs.read_notebook(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    first = next(iter(subs.autograded_exercises(notebook)))
    cell = next(c for c in notebook["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == first)
    text = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o["output_type"] == "stream")
    return text, [o for o in cell.get("outputs", []) if o["output_type"] == "error"]


@pytest.mark.parametrize("student", ["honest-1", "honest-sqlite"])
def test_honest_classmates_keep_full_marks(limited_class, student):
    result = limited_class["results"][student]
    assert result.problem is None, result.problem
    assert result.max_score > 0 and result.scores == result.max_scores


def test_sqlite_files_in_the_notebook_folder_and_in_mkdtemp_work(limited_class):
    text, errors = printed(limited_class["course"], "honest-sqlite")
    assert "SQLITE ok" in text and not errors


def test_writing_3_gib_stops_at_the_folders_size_with_an_error_in_the_cell(limited_class):
    text, errors = printed(limited_class["course"], "fills-the-disk")
    stopped = [line for line in text.splitlines() if line.startswith("ATTACK working folder: stopped")]
    assert stopped and stopped[0].endswith("No space left on device"), text
    # As root the connection folder and file are root's again before any cell runs; as an ordinary user the folder is
    # a 1 MiB tmpfs of the sandbox (full: OSError) and the file is mounted read-only (OSError).
    refused = "PermissionError" if os.geteuid() == 0 else "OSError"
    assert f"ATTACK connection folder: {refused}" in text and f"ATTACK connection file: {refused}" in text
    assert int(stopped[0].split("after ")[1].split()[0]) <= WORK_SIZE // 2**20
    assert [e["ename"] for e in errors] == ["OSError"] and "No space left on device" in errors[0]["evalue"]
    assert set(limited_class["results"]["fills-the-disk"].scores.values()) == {0.0}


def test_nothing_a_kernel_writes_reaches_the_hosts_disk(limited_class):
    # 1.3 GiB written by one kernel, a few MiB of SQLite files by another: none of it on the host's disk
    assert limited_class["watcher"].disk < 32 * 1024**2, limited_class["watcher"].disk
    assert not list((limited_class["course"] / "autograded" / "fills-the-disk").rglob("fill-*.bin"))


def test_all_processes_of_a_kernel_together_stay_within_its_memory_limit(limited_class):
    needs_control_groups()
    peaks = limited_class["watcher"].peaks
    text, _ = printed(limited_class["course"], "children-hold-memory")
    codes = eval(text.split("ATTACK children's exit codes:")[1].strip().splitlines()[0])  # noqa: S307 (our own print)
    assert -9 in codes, f"no child was killed: {codes}"  # the out-of-memory killer, inside the group
    # the student reads it in the cell (the instructor in the report, below)
    assert f"the kernel's processes together reached its memory limit (2 GiB" in text, text
    for student in ("children-hold-memory", "memory-and-files"):
        assert student in peaks, peaks
        assert 0.95 * MEMORY_LIMIT <= peaks[student] <= MEMORY_LIMIT, (student, peaks[student] / 2**20)
        problem = limited_class["results"][student].problem
        assert problem is not None and problem.kind is ProblemKind.OUT_OF_MEMORY, problem
        assert "memory limit" in str(problem) and "c.SandboxProvisioner.memory_limit" in str(problem)
        assert set(limited_class["results"][student].scores.values()) == {0.0}
    seen = limited_class["watcher"].seen
    for student in ("honest-1", "honest-sqlite"):  # their own groups, far from any limit
        assert peaks[student] < MEMORY_LIMIT / 2, peaks
        # graded while the children's attack held the memory of its group
        (began, ended), (attack_began, attack_ended) = seen[student], seen["children-hold-memory"]
        assert began < attack_ended and attack_began < ended, seen


def test_every_kernel_group_is_removed_when_its_kernel_ends(limited_class):
    needs_control_groups()
    seen = limited_class["watcher"].students
    assert set(seen.values()) == set(limited_class["results"]), seen  # every kernel had one
    assert [group for group in seen if os.path.exists(group)] == []


# ---------------------------------------------------------------------------------------------------------------
# The control group itself, seen from the host.

@pytest.mark.parametrize("warm_kernel", [True, False], ids=["warm", "cold"])
def test_the_kernel_and_its_whole_sandbox_are_in_a_group_with_the_limits(tmp_path, warm_kernel):
    import asyncio

    import psutil
    from jupyter_client.manager import AsyncKernelManager

    from coursekit.sandbox import PROVISIONER_NAME
    hierarchy = needs_control_groups()
    if warm_kernel and os.geteuid() != 0:
        pytest.skip("warm kernels need root")

    async def look() -> dict:
        km = AsyncKernelManager(kernel_name="python3")
        km.kernel_spec.metadata["kernel_provisioner"] = {
            "provisioner_name": PROVISIONER_NAME, "config": {"warm": warm_kernel, "memory_limit": MEMORY_LIMIT}}
        await km.start_kernel(cwd=str(tmp_path))
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            group = km.provisioner._group
            bwrap = psutil.Process(km.provisioner.process.pid)
            return {"folders": list(group.folders.values()), "kernel": km.provisioner._kernel_process().pid,
                    "sandbox": {bwrap.pid, *(p.pid for p in bwrap.children(recursive=True))},
                    "members": [set(map(int, Path(f).read_text().split())) for f in group.procs_files],
                    "limits": {name: (folder / name).read_text().strip() for folder in group.folders.values()
                               for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.max",
                                            "memory.swap.max", "pids.max") if (folder / name).exists()}}
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)

    seen = asyncio.run(look())
    for members in seen["members"]:  # every hierarchy: bubblewrap, its init, the kernel (warm: and the waiter)
        assert seen["kernel"] in members and seen["sandbox"] <= members, seen
    expected = {"memory.limit_in_bytes": str(MEMORY_LIMIT), "memory.memsw.limit_in_bytes": str(MEMORY_LIMIT),
                "memory.max": str(MEMORY_LIMIT), "memory.swap.max": "0", "pids.max": "1024"}
    assert seen["limits"] and all(expected[name] == value for name, value in seen["limits"].items()), seen["limits"]
    assert "pids.max" in seen["limits"] or hierarchy.version == 1 and "pids" not in hierarchy.parents
    assert not [folder for folder in seen["folders"] if folder.exists()]  # removed when the kernel ended


def test_kernels_started_at_once_each_answer_and_keep_their_connection_folder_small(tmp_path):
    """Three sandboxed kernels started at the same moment by one process (as nbclient and a grading worker do) all
    answer. As an ordinary user each one's connection folder is a 1 MiB tmpfs of its own sandbox, which the host
    reaches through a link: 2 MiB written there stop with an error, and nothing of it is on the host's disk. (The
    first version of that folder let jupyter_client rewrite the connection file while kernels read it: 14 of 45
    kernels died before answering.)"""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    from coursekit.sandbox import PROVISIONER_NAME
    fill = ("import os, sys\nfolder = os.path.dirname(sys.argv[sys.argv.index('-f') + 1]) + '/connection'\n"
            "try:\n    open(folder + '/fill.bin', 'wb').write(b'x' * 2 * 1024**2); print('written')\n"
            "except OSError as error:\n    print(type(error).__name__)\n") if os.geteuid() else "print(1 + 1)"

    async def one(number: int) -> tuple[str, bool]:
        folder = tmp_path / f"k{number}"
        folder.mkdir(exist_ok=True)
        km = AsyncKernelManager(kernel_name="python3")
        km.kernel_spec.metadata["kernel_provisioner"] = {"provisioner_name": PROVISIONER_NAME, "config": {}}
        await km.start_kernel(cwd=str(folder))
        client = km.client()
        client.start_channels()
        printed = []
        try:
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive(fill, timeout=60, output_hook=lambda m: printed.append(
                m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
            assert reply["content"]["status"] == "ok", reply["content"]
            linked = os.path.islink(Path(km.connection_file).parent / "connection")
        finally:
            client.stop_channels()
            await km.shutdown_kernel(now=True)
        return "".join(printed).strip(), linked

    async def all_at_once():
        return await asyncio.gather(*(one(n) for n in range(3)))

    for _ in range(2):
        answers = asyncio.run(all_at_once())
        if os.geteuid() == 0:  # root: the host's folder, root's again before any cell runs (tested above)
            assert answers == [("2", False)] * 3, answers
        else:
            assert answers == [("OSError", True)] * 3, answers
    assert not list(Path(tempfile.gettempdir()).glob("coursekit-kernel-*/fill.bin"))


def test_the_groups_of_a_killed_grader_are_emptied_and_removed_by_the_next_kernel(tmp_path):
    """A grader killed with SIGKILL cleans nothing up; a process its kernel left in the group keeps running."""
    import signal
    import subprocess
    import sys

    import psutil
    needs_control_groups()
    grader = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys
        from coursekit import cgroup
        group = cgroup.KernelGroup.create(memory=256 * 1024**2, processes=16)
        left = subprocess.Popen(group.joined(["sleep", "3002"]), start_new_session=True)
        print(left.pid, *group.folders.values(), flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid, *folders = grader.stdout.readline().split()
    leftover = psutil.Process(int(pid))
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    time.sleep(0.2)
    assert leftover.is_running() and all(os.path.isdir(f) for f in folders)  # what a killed grader leaves

    cgroup.KernelGroup.create(memory=0, processes=0).remove()  # the next kernel's group: cleans up first
    assert not any(os.path.isdir(f) for f in folders)
    try:
        assert leftover.wait(5) is not None or not leftover.is_running()
    except psutil.NoSuchProcess:
        pass


def test_without_control_groups_the_sandbox_says_why_once_and_keeps_per_process_limits(monkeypatch, caplog):
    import logging
    import sys

    from jupyter_client.kernelspec import KernelSpec

    from coursekit import sandbox
    monkeypatch.setattr(cgroup, "_found", [(None, "creating control groups needs root")])
    monkeypatch.setattr(sandbox, "_group_unavailable_logged", False)
    commands = []
    for _ in range(2):
        spec = KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"])
        provisioner = sandbox.SandboxProvisioner(kernel_id="k", kernel_spec=spec)
        provisioner.log = logging.getLogger("limits-test")
        with caplog.at_level(logging.WARNING, "limits-test"):
            assert provisioner._control_group() is None
        commands.append(provisioner)
    said = [r.getMessage() for r in caplog.records if "control group" in r.getMessage()]
    assert len(said) == 1 and "creating control groups needs root" in said[0] and "per process" in said[0]
    limits = commands[0]._limits()
    assert limits["RLIMIT_AS"] == commands[0].memory_limit and limits["RLIMIT_NPROC"] == commands[0].max_processes


@pytest.mark.skipif(os.geteuid() != 0, reason="control groups are only made as root")
@pytest.mark.parametrize("version", [1, 2])
def test_the_hierarchy_is_detected_at_run_time(tmp_path, version):
    """A host with cgroup v1 hierarchies (here, beside an empty v2 one) or with v2 alone, as /proc describes it;
    folders stand in for the cgroup file systems, and the limits go into the files each version has."""
    proc, v1, v2 = tmp_path / "proc", tmp_path / "v1", tmp_path / "v2"
    proc.mkdir()
    (v2 / "grader").mkdir(parents=True)
    (v2 / "cgroup.subtree_control").write_text("")
    if version == 1:
        (v1 / "memory" / "grader").mkdir(parents=True)
        (v1 / "pids").mkdir()
        (v2 / "cgroup.controllers").write_text("")  # its controllers are bound to the v1 hierarchies
        (proc / "mounts").write_text(f"cgroup {v1}/memory cgroup rw,relatime,memory 0 0\n"
                                     f"cgroup {v1}/pids cgroup rw,relatime,pids 0 0\n"
                                     f"cgroup2 {v2} cgroup2 rw,relatime 0 0\n")
        (proc / "cgroup").write_text("8:pids:/\n4:memory:/grader\n0::/\n")
    else:
        (v2 / "cgroup.controllers").write_text("cpu io memory pids\n")
        (v2 / "coursekit").mkdir()  # a cgroup file system gives a new group this file itself
        (v2 / "coursekit" / "cgroup.subtree_control").write_text("")
        (proc / "mounts").write_text(f"cgroup2 {v2} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n")
        (proc / "cgroup").write_text("0::/grader\n")
    hierarchy, reason = cgroup._detect(proc)
    assert reason is None and hierarchy.version == version
    if version == 1:  # under the grader's own group, in each hierarchy
        assert hierarchy.parents == {"memory": v1 / "memory" / "grader" / "coursekit",
                                     "pids": v1 / "pids" / "coursekit"}
    else:  # at the root, with memory and pids enabled for the children
        assert hierarchy.parents == {"unified": v2 / "coursekit"}
        assert (v2 / "cgroup.subtree_control").read_text() == "+memory +pids"
        assert (v2 / "coursekit" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert all(parent.is_dir() for parent in hierarchy.parents.values())

    (proc / "mounts").write_text(f"cgroup2 {v2} cgroup2 rw 0 0\n")
    (v2 / "cgroup.controllers").write_text("cpu io\n")
    assert cgroup._detect(proc) == (None, "no cgroup v1 memory hierarchy and no cgroup v2 hierarchy with the "
                                          "memory controller")
