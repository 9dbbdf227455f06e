"""The sandbox's uid slots (coursekit.uid_slots): two graders never hand out the same uid, and a folder or a symlink
another user planted is refused. No kernel: milliseconds.

As root the graders take their slots in the real /run/coursekit/sandbox-uids (where other graders of this machine
may hold some: the tests only ask for disjoint slots); as an ordinary user, who needs no slots, in a folder of the
test's own, with the same checks (the folder must be the grader's own user's).
"""
import fcntl
import os
import subprocess
import sys

import pytest

from coursekit import uid_slots
from coursekit.nbgrader_cli import ENV_WITH_VENV

ROOT = os.geteuid() == 0

GRADER = """
import sys
from pathlib import Path
from coursekit import uid_slots
folder = Path(sys.argv[1]) if len(sys.argv) > 1 else uid_slots.FOLDER
sys.stdin.readline()  # "go": both graders start claiming at the same moment
held = [uid_slots.claim(64, folder) for _ in range(20)]
print(" ".join(str(n) for n, _ in held), flush=True)
sys.stdin.readline()  # hold every slot until the test has compared
"""


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "coursekit" / "sandbox-uids"


def test_two_graders_at_once_never_get_the_same_slot_whatever_their_tmpdir(tmp_path, folder):
    where = [] if ROOT else [str(folder)]
    graders = [subprocess.Popen([sys.executable, "-c", GRADER, *where], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env={**ENV_WITH_VENV, "TMPDIR": str(tmp_path / f"tmp{i}")})
               for i in range(2)]
    try:
        for grader in graders:
            grader.stdin.write("go\n")
            grader.stdin.flush()
        taken = [set(map(int, grader.stdout.readline().split())) for grader in graders]
    finally:
        for grader in graders:
            grader.stdin.close()
            grader.wait(timeout=30)
    assert [len(t) for t in taken] == [20, 20] and not taken[0] & taken[1], taken
    assert all(grader.returncode == 0 for grader in graders)


def test_the_folder_is_the_same_for_every_grader_and_outside_tmp():
    assert str(uid_slots.FOLDER) == "/run/coursekit/sandbox-uids"
    for tmpdir in ("/tmp", "/var/tmp/elsewhere"):
        printed = subprocess.run([sys.executable, "-c", "from coursekit import uid_slots; print(uid_slots.FOLDER)"],
                                 env={**ENV_WITH_VENV, "TMPDIR": tmpdir}, capture_output=True, text=True, check=True)
        assert printed.stdout.strip() == "/run/coursekit/sandbox-uids"


def test_a_freed_slot_is_taken_again_and_a_held_one_is_not(folder):
    first, fd = uid_slots.claim(4, folder)
    second, other = uid_slots.claim(4, folder)
    assert (first, second) == (0, 1)
    assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # no kernel inherits the lock
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700) and folder.stat().st_uid == os.geteuid()
    os.close(fd)
    again, fd = uid_slots.claim(4, folder)
    assert again == 0
    os.close(fd)
    os.close(other)


def test_when_every_slot_is_taken_the_next_kernel_is_refused(folder):
    held = [uid_slots.claim(2, folder)[1] for _ in range(2)]
    with pytest.raises(uid_slots.NoFreeSlot, match="uid_slots"):
        uid_slots.claim(2, folder)
    for fd in held:
        os.close(fd)


def test_a_symlink_planted_as_the_folder_is_refused_and_not_followed(tmp_path, folder):
    target = tmp_path / "attacker"
    target.mkdir(mode=0o700)
    folder.parent.mkdir()
    folder.symlink_to(target)
    with pytest.raises(uid_slots.UnsafeSlotsFolder, match="symlink"):
        uid_slots.claim(4, folder)
    assert list(target.iterdir()) == []


def test_a_symlink_planted_as_a_lock_file_is_refused_and_not_followed(tmp_path, folder):
    held = uid_slots.claim(1, folder)[1]  # slot 0, taken (the folder is made on the way)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (folder / "1.lock").symlink_to(victim)
    with pytest.raises(uid_slots.UnsafeSlotsFolder, match="1.lock is a symlink"):
        uid_slots.claim(2, folder)
    os.close(held)
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o755])
def test_a_folder_others_may_enter_or_write_is_refused(folder, mode):
    folder.mkdir(parents=True)
    folder.chmod(mode)
    with pytest.raises(uid_slots.UnsafeSlotsFolder, match=f"mode {mode:o}"):
        uid_slots.claim(4, folder)
    assert list(folder.iterdir()) == []


def test_a_parent_folder_others_may_write_is_refused(folder):
    folder.parent.mkdir()
    folder.parent.chmod(0o777)
    with pytest.raises(uid_slots.UnsafeSlotsFolder, match="mode 777"):
        uid_slots.claim(4, folder)


@pytest.mark.skipif(not ROOT, reason="making a folder that belongs to another user needs root (chown)")
def test_a_folder_another_user_made_first_is_refused(folder):
    folder.mkdir(parents=True, mode=0o700)
    os.chown(folder, 4242, 4242)  # a local user who created it before any grader ran
    with pytest.raises(uid_slots.UnsafeSlotsFolder, match="belongs to uid 4242"):
        uid_slots.claim(4, folder)
    assert list(folder.iterdir()) == []
