"""Uid slots: which of the sandbox's unprivileged uids (first_uid + n) a kernel may take, as root.

One lock file per slot n, held (flock) by the grading process whose kernel runs as first_uid + n, released when the
kernel ends or its grader dies (the kernel then dies with it: bubblewrap's --die-with-parent). Every grader on the
machine, whatever its TMPDIR, takes its slots in the same folder, /run/coursekit/sandbox-uids, so two graders
never hand out the same uid. The folder is root's, outside the world-writable /tmp: a folder or a symlink another
local user put there first is refused, never used (it could hand that user a kernel's uid, or make root create
files where the user points). An ordinary user needs no slots: its kernels run in a user namespace of their own.
"""
import errno
import os
from pathlib import Path

try:
    import fcntl  # Unix; elsewhere no sandbox runs anyway
except ImportError:
    fcntl = None

FOLDER = Path("/run/coursekit/sandbox-uids")

# Opening a folder or a lock file never follows a symlink, and no kernel or tool this process starts inherits it.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeSlotsFolder(RuntimeError):
    """The slots' folder (or a lock file in it) is not this user's own, private one: grading stops."""


class NoFreeSlot(RuntimeError):
    """Every slot is taken: that many sandboxed kernels already run on this machine."""


def open_folder(folder: Path = FOLDER) -> int:
    """A file descriptor of `folder`, created if missing, after checking that it and its parent are this user's own
    (root's, when grading as root) and that no one else may write to them; the folder itself is private (0700)."""
    folder = Path(folder)
    fd = os.open(folder.parent.parent, _DIR_FLAGS & ~os.O_NOFOLLOW)  # /run: the system's, followed as it is
    try:
        for name, mode, private in ((folder.parent.name, 0o755, False), (folder.name, 0o700, True)):
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeSlotsFolder(f"{folder}: {name} is not a folder (a symlink?); remove it") from None
                raise
            os.close(fd)
            fd = child
            _check(os.fstat(fd), folder, name, private)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _check(status: os.stat_result, folder: Path, name: str, private: bool) -> None:
    forbidden = 0o077 if private else 0o022
    if status.st_uid != os.geteuid():
        raise UnsafeSlotsFolder(f"{folder}: {name} belongs to uid {status.st_uid}, not to this grader's "
                                f"(uid {os.geteuid()}); someone else made it: remove it")
    if status.st_mode & forbidden:
        raise UnsafeSlotsFolder(f"{folder}: {name} has mode {status.st_mode & 0o777:o}: others may write there; "
                                "remove it")


def claim(count: int, folder: Path = FOLDER) -> tuple[int, int]:
    """The first free slot n < count: (n, the lock's file descriptor). Closing the descriptor frees the slot."""
    directory = open_folder(folder)
    try:
        for n in range(count):
            try:
                fd = os.open(f"{n}.lock", _LOCK_FLAGS, 0o600, dir_fd=directory)
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise UnsafeSlotsFolder(f"{folder}/{n}.lock is a symlink; remove it") from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return n, fd
    finally:
        os.close(directory)
    raise NoFreeSlot(f"{count} sandboxed kernels already run on this machine (c.SandboxProvisioner.uid_slots)")
