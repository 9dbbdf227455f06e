"""Warm kernels (coursekit.warm): forks of a template process, each in a sandbox that is the cold kernel's own.

These tests start kernels through jupyter_client with the course's provisioner, as nbgrader does, and look at them
from inside (what a student's code could see or do) and from outside (what is left on the machine afterwards).
Grading with warm kernels, the default, is what every grading test of the suite does.
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from coursekit import warm
from coursekit.sandbox import PROVISIONER_NAME, unavailable_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="warm kernels need root; elsewhere kernels start cold"),
]

PRELOAD = ["fastapi", "sqlalchemy.ext.asyncio", "httpx", "jwt"]


async def run_in_kernel(code: str, folder, warm_kernel: bool = True, preload=PRELOAD) -> dict:
    """Start a sandboxed kernel in `folder`, run `code` (which prints one JSON line), stop the kernel: that JSON."""
    km = AsyncKernelManager(kernel_name="python3")
    km.kernel_spec.metadata["kernel_provisioner"] = {
        "provisioner_name": PROVISIONER_NAME, "config": {"warm": warm_kernel, "preload_modules": preload}}
    await km.start_kernel(cwd=str(folder))
    client = km.client()
    client.start_channels()
    printed = []
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(
            code, timeout=60, output_hook=lambda m: printed.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=True)
    return json.loads("".join(printed).strip().splitlines()[-1])


def kernel(code: str, folder, **options) -> dict:
    return asyncio.run(run_in_kernel(textwrap.dedent(code), folder, **options))


# What a student's code can find out about where it runs. Pids, namespace ids and the slot's uid vary per kernel;
# everything else must be the same for a warm kernel as for a cold one.
FACTS = """
import json, os, re, resource, socket, sys
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
mounts = sorted((re.sub(r"coursekit-kernel-[^/]+", "coursekit-kernel-*", line.split()[4]), line.split(" - ")[1].split()[0], line.split()[5].split(",")[0])
                for line in open("/proc/self/mountinfo"))
def reaches(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False
print(json.dumps({
    "uid": os.getuid() >= 1_000_000_000, "gid": os.getgid() >= 1_000_000_000, "groups": os.getgroups(),
    "capabilities": {k: v.strip() for k, v in status.items() if k in ("CapInh", "CapPrm", "CapEff", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"].strip(), "hostname": socket.gethostname(), "parent": os.getppid(),
    "init": open("/proc/1/cmdline").read().split("\\0")[0].rsplit("/", 1)[-1], "mounts": mounts,
    "limits": {name: resource.getrlimit(getattr(resource, name)) for name in
               ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE")},
    "tmp_writable": os.access("/tmp", os.W_OK), "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
    "environment": sorted(os.environ), "sees_the_host_file": os.path.exists(HOST_FILE),
    "reaches_the_host": reaches(PORT), "namespaces": {n: os.readlink(f"/proc/self/ns/{n}") for n in
                                                        ("mnt", "pid", "net", "ipc", "uts")},
    "bounding_set": status["CapBnd"].strip(),
}))
"""


@pytest.fixture()
def listener():
    """A TCP port of the host's 127.0.0.1 that accepts connections (a kernel must not reach it)."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def test_a_warm_kernel_runs_in_the_same_sandbox_as_a_cold_one(tmp_path, listener):
    assert unavailable_reason() is None
    folder = tmp_path / "autograded" / "alice" / "01"
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("the student's own file")
    host_file = tmp_path / "gradebook.db"
    host_file.write_text("not for students")
    code = f"HOST_FILE, PORT = {str(host_file)!r}, {listener}\n" + FACTS
    cold, warm_ = kernel(code, folder, warm_kernel=False), kernel(code, folder)

    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "pid", "net", "ipc", "uts")}
    for facts in (cold, warm_):
        assert all(facts["namespaces"][n] != host[n] for n in host), facts["namespaces"]
        assert facts["uid"] and facts["gid"] and facts["groups"] == []
        assert set(facts["capabilities"].values()) == {"0000000000000000"}
        assert facts["no_new_privs"] == "1" and facts["init"] == "bwrap" and facts["parent"] == 1
        assert not facts["sees_the_host_file"] and not facts["reaches_the_host"] and facts["tmp_writable"]
        # the notebook's folder, by its path: an empty tmpfs (nothing of the student's folder enters the sandbox)
        assert facts["files"] == [] and facts["cwd"] == str(folder.resolve())
    assert warm_["bounding_set"] == "0000000000000000"  # a warm kernel drops the bounding set too (stricter)
    different = {k for k in cold if k not in ("namespaces", "bounding_set") and cold[k] != warm_[k]}
    assert not different, {k: (cold[k], warm_[k]) for k in different}
    assert warm_["namespaces"] != cold["namespaces"]  # each kernel has its own


def test_nothing_of_one_warm_kernel_reaches_the_next(tmp_path):
    """Module state, files in /tmp and the notebook's folder, processes and random numbers: all fresh per kernel."""
    folder = tmp_path / "student"
    folder.mkdir()
    first = kernel("""
        import json, os, pathlib, random, subprocess, fastapi
        fastapi.LEFT_BY_THE_FIRST = True
        pathlib.Path("/tmp/left-in-tmp").write_text("x")
        pathlib.Path("left-in-the-folder").write_text("x")
        subprocess.Popen(["sleep", "3001"], start_new_session=True)  # a process meant to outlive its kernel
        print(json.dumps({"random": random.random(), "zygote_modules": "sqlalchemy" in __import__("sys").modules}))
    """, folder)
    zygote = warm._zygotes[tuple([*warm.KERNEL_MODULES, *PRELOAD])].process.pid
    second = kernel("""
        import json, os, random, fastapi
        print(json.dumps({"random": random.random(), "module": hasattr(fastapi, "LEFT_BY_THE_FIRST"),
                          "tmp": os.path.exists("/tmp/left-in-tmp"), "folder": os.listdir("."),
                          "sleeps": [p for p in os.listdir("/proc") if p.isdigit() and
                                     "3001" in open(f"/proc/{p}/cmdline").read()]}))
    """, folder)
    assert warm._zygotes[tuple([*warm.KERNEL_MODULES, *PRELOAD])].process.pid == zygote  # the same template
    assert first["zygote_modules"]  # imported before the first line of the notebook ran
    assert second == {"random": second["random"], "module": False, "tmp": False, "folder": [], "sleeps": []}
    assert second["random"] != first["random"]
    assert list(folder.iterdir()) == []  # the kernel wrote into its own tmpfs only
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-2:] == ["sleep", "3001"]]
    assert not left, "a process of the first kernel outlived it"


def test_a_module_the_course_preloads_but_is_not_installed_is_named(tmp_path):
    with pytest.raises(warm.WarmKernelError, match="cannot preload module 'coursekit_no_such_module'"):
        kernel("print('{}')", tmp_path, preload=["fastapi", "coursekit_no_such_module"])
    # before grading: tests/test_settings.py (test_each_documented_setting_in_nbgrader_config_takes_effect)


def test_a_dead_template_process_is_replaced(tmp_path):
    kernel("print('{}')", tmp_path)
    zygote = warm._zygotes[tuple([*warm.KERNEL_MODULES, *PRELOAD])].process
    zygote.kill()
    zygote.wait()
    assert kernel("import os; print('{\"alive\": true}')", tmp_path) == {"alive": True}
    assert warm._zygotes[tuple([*warm.KERNEL_MODULES, *PRELOAD])].process.pid != zygote.pid


GRADER = """
import asyncio, json, sys
from jupyter_client.manager import AsyncKernelManager
from coursekit import warm
async def main():
    km = AsyncKernelManager(kernel_name="python3")
    km.kernel_spec.metadata["kernel_provisioner"] = {"provisioner_name": "coursekit-sandbox",
                                                     "config": {"warm": True, "preload_modules": ["fastapi"]}}
    await km.start_kernel(cwd=sys.argv[1])
    zygote = next(iter(warm._zygotes.values()))
    print(json.dumps({"zygote": zygote.process.pid, "kernel": km.provisioner._kernel_pid[0],
                      "folder": zygote.folder}), flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def test_a_killed_grader_leaves_no_template_and_no_kernel(tmp_path):
    grader = subprocess.Popen([sys.executable, "-c", GRADER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(grader.stdout.readline())
        folder = pids.pop("folder")
        assert psutil.pid_exists(pids["zygote"]) and psutil.pid_exists(pids["kernel"]) and os.path.isdir(folder)
        grader.send_signal(signal.SIGKILL)
        grader.wait()
        gone_by = time.monotonic() + 15
        while time.monotonic() < gone_by and any(_alive(pid) for pid in pids.values()):
            time.sleep(0.1)
        assert not [name for name, pid in pids.items() if _alive(pid)]
        assert not os.path.exists(folder), "the template's folder was left behind"
    finally:
        grader.kill()


def test_the_folder_of_a_template_killed_with_its_grader_is_removed_by_the_next_kernel(tmp_path):
    """A submission past its deadline: its grader and everything it started are killed (SIGKILL), the template
    too, so nobody removes the template's folder; the next kernel's start does (before: two left per test run)."""
    grader = subprocess.Popen([sys.executable, "-c", GRADER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(grader.stdout.readline())
        folder = pids.pop("folder")
        os.kill(pids["zygote"], signal.SIGKILL)  # first, so that it cannot clean up when its grader goes
        grader.kill()
        grader.wait()
        psutil.wait_procs([psutil.Process(pids["zygote"])] if _alive(pids["zygote"]) else [], timeout=15)
        assert os.path.isdir(folder)  # left behind, as before
        assert kernel("import json; print(json.dumps(1))", tmp_path) == 1
        assert not os.path.exists(folder), "the killed template's folder was left behind"
    finally:
        grader.kill()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_sandbox_that_cannot_start_is_a_clear_error_at_once(tmp_path):
    """bubblewrap refuses a setting: the warm kernel's start fails saying so, without waiting for a timeout."""
    async def start():
        km = AsyncKernelManager(kernel_name="python3")
        km.kernel_spec.metadata["kernel_provisioner"] = {
            "provisioner_name": PROVISIONER_NAME, "config": {"warm": True, "preload_modules": PRELOAD, "tmp_size": -1}}
        try:
            await km.start_kernel(cwd=str(tmp_path))
        finally:
            await km.cleanup_resources()

    started = time.monotonic()
    with pytest.raises(warm.WarmKernelError, match="the sandbox ended before it was ready"):
        asyncio.run(start())
    assert time.monotonic() - started < 30
