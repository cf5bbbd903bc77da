"""What may be done to a run folder: write into it only for the config that made it.

Before a run writes anything, its folder's fingerprint.json is compared with the config
asked for (identity.py). Another config's folder is refused, every differing key named,
unless the run moves it aside (`--move-aside`: renamed to `<folder>.moved-<UTC time>`,
never deleted). A folder that holds results or checkpoints but no fingerprint is refused
alike: nothing says what made it. A finished training run asked for again is reported, not
redone. The run then holds the folder's lock (lock.py) until it ends.
"""
import atexit
import datetime
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sar_prompt.runs import fingerprint
from sar_prompt.runs import identity
from sar_prompt.runs import lock as run_lock
from sar_prompt.errors import ConfigError, SarPromptError, os_error_message
from sar_prompt.runs.result_file import RESULT_FILE, read_run

MOVED = ".moved-"


@dataclass
class Clash:
    """Why a folder is not the requested run's: `diffs` [(key, stored, requested)], or no
    fingerprint at all (`unknown`)."""
    run_dir: str
    diffs: list = field(default_factory=list)
    unknown: bool = False
    unreadable: str = ""  # why its fingerprint.json cannot be read (unknown then)

    def summary(self):
        if self.unreadable:
            return f"holds results or checkpoints but its {fingerprint.FILE} is unreadable"
        if self.unknown:
            return "holds results or checkpoints but no fingerprint.json"
        return "; ".join(identity.describe(self.diffs, limit=4))

    def message(self, move_flag="--move-aside", where="another --output", also=""):
        if self.unknown:
            what = (f"its {fingerprint.FILE} is unreadable ({self.unreadable})"
                    if self.unreadable else f"no {fingerprint.FILE}")
            head = (f"{self.run_dir} holds results or checkpoints but {what}, so nothing says "
                    "which config made them; this run will not resume, skip or overwrite "
                    "them.")
        else:
            lines = "\n".join(f"    {line}" for line in identity.describe(self.diffs))
            head = (f"{self.run_dir} belongs to another config: its {fingerprint.FILE} differs "
                    f"from this run's (stored -> requested):\n{lines}\n")
        return (f"{head} Write this run to {where}, or pass {move_flag} to rename that folder "
                f"to {Path(self.run_dir).name}{MOVED}<UTC time> (nothing is deleted) and start "
                f"afresh{also}.")


def holds_checkpoints(run_dir):
    folder = glob.escape(str(run_dir))
    return bool(glob.glob(os.path.join(folder, "*", "model.pth.tar-*"))
                or glob.glob(os.path.join(folder, "*", "checkpoint")))


def holds_work(run_dir):
    """Whether a folder holds a result or a checkpoint (something that would be lost)."""
    return (Path(run_dir) / RESULT_FILE).exists() or holds_checkpoints(run_dir)


def refuse_training_folder(run_dir):
    """An evaluation never writes into a training run's folder: its fingerprint.json and
    results.json would replace the ones that say what the training run was."""
    try:
        stored = fingerprint.read(run_dir)
    except SarPromptError:
        stored = None
    trained = stored is not None and not (stored.get("run") or {}).get("eval_only", False)
    if not trained and not holds_checkpoints(run_dir):
        return
    why = (f"its {fingerprint.FILE} records a training run" if trained
           else "it holds checkpoints")
    raise ConfigError(f"--output {run_dir} is a training run's folder ({why}). An "
                      f"evaluation writes its own {fingerprint.FILE} and {RESULT_FILE} there, "
                      "which would replace the training run's record of what made it. "
                      "Evaluate into another --output (pass the training run's folder as "
                      "--model-dir).")


def clash(run_dir, requested):
    """The Clash between a folder and `requested` (identity.requested_fingerprint), or None
    when the folder is the requested run's (or holds nothing of value)."""
    try:
        stored = fingerprint.read(run_dir, strict=True)
    except fingerprint.FingerprintUnreadable as exc:
        return Clash(str(run_dir), unknown=True, unreadable=exc.why) if holds_work(run_dir) \
            else None
    if stored is None:
        return Clash(str(run_dir), unknown=True) if holds_work(run_dir) else None
    diffs = identity.differences(identity.of_fingerprint(stored),
                                 identity.of_fingerprint(requested))
    return Clash(str(run_dir), diffs) if diffs else None


def move_aside(run_dir, log=None):
    """Rename `run_dir` to a sibling `<name>.moved-<UTC time>`; the new path."""
    folder = Path(run_dir)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = folder.with_name(f"{folder.name}{MOVED}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}{MOVED}{stamp}-{n}")
    os.rename(folder, target)
    print(f"[sar_prompt] moved {folder} aside to {target}", file=log or sys.stdout, flush=True)
    return target


@dataclass
class Claim:
    finished: bool = False
    lock: object = None


_claims = []


def release_claims():
    while _claims:
        _claims.pop().release()


atexit.register(release_claims)


def _finished(out, state):
    print(f"{out}: finished earlier with this config: accuracy {state.accuracy:.2f}% "
          f"({Path(out) / RESULT_FILE}); nothing to do.")
    return Claim(finished=True)


def claim(cfg, args, command=None):
    """train.py's check before it writes anything into cfg.OUTPUT_DIR: the folder is this
    config's (else ConfigError, or with args.move_aside it is moved aside), a finished
    training run is reported and not redone (Claim.finished), and the folder is locked until
    `release_claims` (train.main calls it when the run ends)."""
    out = cfg.OUTPUT_DIR
    requested = identity.requested_fingerprint(cfg)
    move = getattr(args, "move_aside", False)
    # an evaluation's folder holds only its result: --overwrite-results replaces it whole
    replace = args.eval_only and getattr(args, "overwrite_results", False)
    also = ", or (an evaluation) pass --overwrite-results to replace it" if args.eval_only else ""
    run_lock.refuse_links(out)  # before anything in the folder is read or written
    if args.eval_only:
        refuse_training_folder(out)
    found = None if replace else clash(out, requested)
    if found and not move:
        raise ConfigError(found.message(also=also))
    trains = not args.eval_only and not getattr(args, "no_train", False)
    try:
        lock = run_lock.acquire(out, command=command)
    except OSError as exc:  # a read-only disk, say: a finished run needs no lock to say so
        if found is None and trains and not isinstance(exc, SarPromptError) \
                and os_error_message(exc) and read_run(out).finished:
            return _finished(out, read_run(out))
        raise
    try:
        found = None if replace else clash(out, requested)  # again, under the lock
        if found:
            if not move:
                raise ConfigError(found.message(also=also))
            lock.release()
            move_aside(out)
            lock = run_lock.acquire(out, command=command)
        state = read_run(out)
        if trains and state.finished:
            lock.release()
            return _finished(out, state)
    except BaseException:
        lock.release()
        raise
    _claims.append(lock)
    return Claim(lock=lock)
