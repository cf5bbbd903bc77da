"""Every file sar_prompt writes goes through here: written atomically, so an interrupted or
killed run never leaves a truncated file in place of a good one, and created with the
permissions a plain `open()` would give it (0666 less the umask, or the folder's default
ACL), not the 0600 of `tempfile.mkstemp`.

Atomic means: the data goes to a hidden temporary file beside the target
(`.<name>.<random>.tmp`), is flushed to disk, and is renamed over the target in one step.
Readers see the old file or the new one, never a mix. A process killed with SIGKILL
mid-write cannot delete its temporary file; the target is untouched either way.

No write follows a symbolic link: a target that is a link is refused (LinkRefused: writing
through it would change the file it points to, replacing it would drop the user's link),
temporary files are created exclusively (O_EXCL never follows a link) and files opened to
append are opened with O_NOFOLLOW.
"""
import errno
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

# What writing a file can meet on the way to the disk (not, say, a network read's errors)
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                 errno.EFBIG}
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def refuse_link(path, where=None):
    """Raise LinkRefused when `path` is a symbolic link (dangling or not)."""
    if os.path.islink(path):
        from sar_prompt.errors import LinkRefused

        raise LinkRefused(path, where)


def open_nofollow(path, flags, mode=0o666):
    """`os.open` that never follows a link at `path` itself (LinkRefused instead)."""
    refuse_link(path)
    try:
        return os.open(path, flags | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # made a link since the check above
            refuse_link(path)
        raise


def open_append(path):
    """A text file opened to append (created if needed), never through a link."""
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8")


def _create_temp(path: Path):
    """(fd, temp path) of a new file beside `path`, created as `open(..., "w")` would."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp  # the kernel applies the umask
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def _make_folder(folder: Path):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file stands where a folder must be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) \
            from None


def _sync_folder(folder: Path):
    """Make the rename itself durable (best effort: not every system can fsync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path, mode="wb"):
    """`with atomic_writer(path) as f: ...` writes to a temporary file that replaces `path`
    only when the block ends without an exception. `mode` is "wb" or "w" (UTF-8 text)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer writes whole files: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    _make_folder(path.parent)
    refuse_link(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None and exc.errno in _WRITE_ERRORS:
            # a failed write() names no file: name the one the user asked for
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
    _sync_folder(path.parent)


@contextmanager
def resumable_writer(path, resume=False):
    """For downloads: write (or with `resume`, append) to `<path>.part`, which is renamed to
    `path` when the block ends normally and kept, for a later run to resume, when it raises."""
    path = Path(path)
    part = partial_path(path)
    refuse_link(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if resume else os.O_TRUNC)
    with os.fdopen(open_nofollow(part, flags), "ab" if resume else "wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    _sync_folder(path.parent)


def partial_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".part")


@contextmanager
def atomic_folder(path):
    """`with atomic_folder(path) as work:` fill the new folder `work` (hidden, beside
    `path`; write its files with `write_unpublished`), which replaces `path` in one rename
    when the block ends normally (a folder already there is moved aside, then deleted), and
    is deleted when it raises. Readers see the old folder or the new one, whole."""
    import shutil
    import tempfile

    path = Path(path)
    _make_folder(path.parent)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(work, 0o777 & ~current_umask())  # as mkdir would make it, not mkdtemp's 0700
        yield work
        if path.exists():
            old = path.with_name(f".{path.name}.old.{secrets.token_hex(4)}")
            os.replace(path, old)
            os.replace(work, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, path)
        _sync_folder(path.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def write_unpublished(path, data: bytes) -> Path:
    """A file inside an `atomic_folder` being filled: written directly (no one reads it
    before the folder's rename publishes it whole)."""
    path = Path(path)
    _make_folder(path.parent)
    with open(path, "xb") as f:
        f.write(data)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    with atomic_writer(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, indent=2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice: which value was meant is unknown."""

    def __init__(self, key, where=None):
        self.key, self.where = key, where
        super().__init__(self.message())

    def message(self):
        where = f"{self.where}: " if self.where else ""
        return (f"{where}the key {self.key!r} appears twice in one JSON object, so which value "
                "is meant is unknown. Keep one of them (edit the file, or make it again).")


def _refuse_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(key)
        seen[key] = value
    return seen


def loads_json(text, where=None):
    """`json.loads`, refusing an object that names a key twice (the standard library keeps
    the last value silently). Raises json.JSONDecodeError or DuplicateKeyError (naming
    `where`, a file, when given)."""
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except DuplicateKeyError as exc:
        raise DuplicateKeyError(exc.key, where) from None


def read_json(path):
    """The JSON content of a file, read strictly (see `loads_json`). Raises OSError,
    UnicodeDecodeError, json.JSONDecodeError or DuplicateKeyError naming the file."""
    path = Path(path)
    return loads_json(path.read_text(encoding="utf-8"), str(path))


def check_writable_folder(folder):
    """Create `folder` if needed and prove a file can be created in it (then removed), so a
    command can fail before it spends anything. Raises OSError naming the path."""
    folder = Path(folder)
    _make_folder(folder)
    try:
        fd, tmp = _create_temp(folder / "write-test")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from exc
    os.close(fd)
    os.unlink(tmp)


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask
