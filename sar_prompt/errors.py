"""Errors that carry a message meant for the user: what is wrong, where, and how to fix it.

`train.py` and the other command-line entry points print these without a traceback, through
`run_command`, which also fixes the exit status every command uses.
"""
import errno
import os
import sys


class SarPromptError(Exception):
    """Base class of every error whose message tells the user how to fix it."""


class ConfigError(SarPromptError, KeyError):
    """A config key, value or file is wrong."""

    def __str__(self):  # KeyError would quote the message
        return self.args[0] if self.args else ""


class DataError(SarPromptError, ValueError):
    """A dataset folder, split file or image is missing or malformed."""


class NovelClassesError(SarPromptError, ValueError):
    """A novel-class file is missing or malformed."""


class WeightsError(SarPromptError, FileNotFoundError):
    """CLIP weights cannot be found or read."""


class CheckpointError(SarPromptError, RuntimeError):
    """A checkpoint is missing, truncated, refused because loading it could run code, or
    lacks (or has another shape for) a tensor the method needs."""


class MissingCheckpointError(CheckpointError, FileNotFoundError):
    """No checkpoint file where one was expected."""


class LinkRefused(SarPromptError, OSError):
    """A file sar-prompt would write (or a folder it would write in) is a symbolic link.
    Writing through it would change the file it points to, wherever that is; replacing it
    would silently drop what the user set up. Neither is done."""

    def __init__(self, path, where=None):
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        where = where or "where sar-prompt writes a file of its own"
        super().__init__(f"{path} is a symbolic link{target}, {where}. sar-prompt never "
                         "writes through a link, which would change what the link points to. "
                         f"Remove the link (rm {path}), or write to another folder.")
        self.errno, self.filename = errno.ELOOP, str(path)

    def __str__(self):
        return self.args[0]


# Exit status of every command (train.py, python -m sar_prompt.data / .novel / .demo):
EXIT_OK = 0  # done
EXIT_UNEXPECTED = 1  # an error we did not foresee: Python's traceback (please report it)
EXIT_USER = 2  # bad input, data or environment: one message saying what and how to fix it
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)

# Failures of the machine or folder the user chose, not of sar_prompt.
_USER_OS_ERRORS = {errno.EACCES: "check the folder's permissions, or choose another one",
                   errno.EPERM: "check the folder's permissions, or choose another one",
                   errno.EROFS: "the file system is read-only; choose another folder",
                   errno.ENOSPC: "the disk is full; free some space or choose another folder",
                   errno.EDQUOT: "the disk quota is used up; free some space",
                   errno.ENOTDIR: "a part of that path is a file, not a folder",
                   errno.EISDIR: "that is a folder; give a file name"}


def os_error_message(exc):
    """`cannot write or read PATH: <reason>; <what to do>.` for a file-system refusal of the
    user's machine or folder (see _USER_OS_ERRORS), else None (a fault to report)."""
    if not isinstance(exc, OSError) or exc.errno not in _USER_OS_ERRORS:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    return f"cannot write or read {where}: {exc.strerror}; {_USER_OS_ERRORS[exc.errno]}."


class OutputError(SarPromptError):
    """A file could not be written where the user asked (permissions, full disk, a path
    through a file): the message names the path and what to do."""


def run_command(command, interrupted="interrupted.") -> int:
    """Run a command's body and turn its outcome into the exit status above: SarPromptError
    and file-system refusals print `error: ...` (no traceback) and give 2, Ctrl-C prints
    `interrupted` and gives 130, anything else propagates (traceback, 1). `command()`
    returns None or an exit status."""
    try:
        status = command()
    except SarPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if status is None else status
