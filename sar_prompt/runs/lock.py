"""One writer per run folder: a POSIX lock (`fcntl.lockf`) on `run.lock` in the folder.

The kernel drops the lock when its process ends, however it ends, and lockf locks also hold
across machines on NFS. The holder writes who it is into the file (host, pid, since when,
command), so a second process is refused with the holder named, and empties it when it lets
go: a file that still names a holder while nobody holds the lock was left by a killed
process, and the next run takes it over (and says so).

No file of a run folder is a symbolic link: `acquire` refuses a folder that holds one
(LinkRefused), since the run's writers (this lock, Dassl's log, checkpoints, results) would
change what it points to, and the lock file is opened with O_NOFOLLOW.

A runner that holds a run's lock while its child `train.py` writes the run hands it over
with HANDOFF_ENV = "<lock file>:<pid of the holder>"; the child checks that the lock is held
and that its file names that pid, one of its ancestors, and then runs without locking again.
"""
import atexit
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import threading
from pathlib import Path

from sar_prompt.errors import ConfigError, LinkRefused
from sar_prompt.io import NOFOLLOW, open_nofollow

LOCK_FILE = "run.lock"
HANDOFF_ENV = "SAR_PROMPT_RUN_LOCK"
_held = {}                       # lock file -> RunLock held by this process
_held_guard = threading.Lock()


class RunBusy(ConfigError):
    """Another process is writing this run folder."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder or {}


def lock_path(run_dir):
    return Path(run_dir) / LOCK_FILE


def refuse_links(run_dir):
    """LinkRefused for the first symbolic link inside `run_dir` (the folder itself may be
    one: only what is in it is the run's)."""
    top = Path(run_dir)
    for folder, dirs, files in os.walk(top):  # a link to a folder is listed, not entered
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                raise LinkRefused(path, f"inside the run folder {top}, where a run writes its "
                                        "own files (run.lock, log.txt, fingerprint.json, "
                                        "results.json, checkpoints)")


def _open_lock_file(path):
    if path.is_dir() and not path.is_symlink():
        raise ConfigError(f"{path} is a folder, where the run keeps its lock file ({LOCK_FILE}, "
                          "which says which process is writing the run). Move the folder away "
                          f"or remove it (rmdir {path}), then run again.")
    return open_nofollow(path, os.O_RDWR | os.O_CREAT)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _read_info(fd):
    try:
        data = os.pread(fd, 1 << 16, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return {"unreadable": True}
    return info if isinstance(info, dict) else ({"unreadable": True} if info else None)


def describe(info):
    if not info or info.get("unreadable"):
        return "an unknown process (its lock file is unreadable)"
    command = " ".join(info.get("command") or [])
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
            + (f" ({command})" if command else ""))


def _ancestors(limit=16):
    """This process's parent, its parent, ... (Linux /proc; elsewhere the parent only)."""
    out, pid = [], os.getppid()
    while pid > 1 and len(out) < limit:
        out.append(pid)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


class RunLock:
    """The lock of one run folder, held (`acquire`) until `release`."""

    def __init__(self, run_dir, fd=None, inherited=False):
        self.path = lock_path(run_dir)
        self.fd = fd
        self.inherited = inherited   # the parent process holds it for us
        self.took_over = None        # holder info of a stale lock taken over

    def release(self):
        if self.fd is None:
            return
        with _held_guard:
            _held.pop(str(self.path), None)
        try:
            os.ftruncate(self.fd, 0)  # an empty file: let go of cleanly, not stale
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _handed_over(path):
    """True when HANDOFF_ENV names this lock file and an ancestor that holds it."""
    value = os.environ.get(HANDOFF_ENV, "")
    where, _, pid = value.rpartition(":")
    if not where or not pid.isdigit():
        return False
    try:
        if Path(where).resolve() != path.resolve() or int(pid) not in _ancestors():
            return False
        fd = os.open(path, os.O_RDWR | NOFOLLOW)
    except OSError:
        return False
    try:
        info = _read_info(fd)
        try:  # a probe from another process: fails while the ancestor holds the lock
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return bool(info) and info.get("pid") == int(pid)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def acquire(run_dir, command=None, log=None):
    """Lock `run_dir` (created if needed) for this process; a RunLock. Raises RunBusy, naming
    the holder, when another process (or this one) holds it. A lock left by a killed process
    is taken over, with a line on `log` (stderr by default) saying so."""
    log = log or sys.stderr
    path = lock_path(run_dir)
    with _held_guard:
        if str(path) in _held:
            raise RunBusy(f"{run_dir} is being written by this process already.",
                          {"pid": os.getpid()})
    if _handed_over(path):
        return RunLock(run_dir, inherited=True)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    refuse_links(run_dir)
    fd = _open_lock_file(path)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        info = _read_info(fd)
        os.close(fd)
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise RunBusy(f"{run_dir} is being written by another process: {describe(info)}. "
                      "Wait for it to finish (or stop it), or write this run to another "
                      "folder.", info) from None
    lock = RunLock(run_dir, fd)
    stale = _read_info(fd)
    if stale:
        lock.took_over = stale
        print(f"[sar_prompt] {path}: taking over a stale lock left by {describe(stale)}, "
              "which is no longer running.", file=log, flush=True)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now(),
            "command": list(command if command is not None else sys.argv)}
    data = (json.dumps(info) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    with _held_guard:
        _held[str(path)] = lock
    return lock


@atexit.register
def _release_all():
    """A process that ends normally lets go of its locks cleanly (not seen as stale)."""
    with _held_guard:
        held = list(_held.values())
    for lock in held:
        lock.release()


def holder(run_dir):
    """Who holds the lock of `run_dir` ({"host", "pid", "since", "command"}), or None when
    it is free. Read-only: never creates the file."""
    path = lock_path(run_dir)
    with _held_guard:
        if str(path) in _held:  # probing our own lock would drop it (POSIX locks)
            return {"pid": os.getpid(), "host": socket.gethostname(), "self": True}
    try:
        fd = os.open(path, os.O_RDWR | NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return _read_info(fd) or {"unreadable": True}
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def handoff_env(lock):
    """The environment entry a child that writes the locked run inherits."""
    return {HANDOFF_ENV: f"{lock.path}:{os.getpid()}"}
