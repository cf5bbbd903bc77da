"""The per-run result file and the state of a run folder.

Each evaluation writes `results.json` in its run folder, and the tables
(`sar_prompt.results`) are built from those files, not from logs. A run folder is
*finished* only when its results.json is complete and valid; a truncated or otherwise
invalid one makes the run *broken* (run again, never counted), a runner that saw the run fail
leaves `failed.json`, and a folder with neither is *interrupted* (a training run resumes
from its last checkpoint) or *absent*.
"""
import datetime
import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

from sar_prompt.dassl_glue.results_json import RESULT_FILE
from sar_prompt.io import DuplicateKeyError, atomic_write_json, read_json

FAILED_FILE = "failed.json"
LOG_FILE = "log.txt"
STATUSES = ("finished", "broken", "failed", "interrupted", "absent")


@dataclass(frozen=True)
class RunState:
    status: str            # one of STATUSES
    path: Path             # the run folder
    accuracy: float = None
    epoch: int = None
    detail: str = ""       # why it is broken, failed or interrupted
    result: dict = None    # results.json's content, when finished

    @property
    def finished(self):
        return self.status == "finished"

    @property
    def log(self):
        return latest_log(self.path)


def folder_identity(run_dir):
    """What a run folder's place in the layout says its results.json must hold:
    <phase>/<dataset>/shots_<K>/<trainer>/<config>/seed<N> (protocol.run_dir) gives the
    seed, trainer, subsample_classes, dataset (its registered name) and, except for
    transfer targets (which use all their images), num_shots. {} for another folder."""
    from sar_prompt.catalog import by_key
    from sar_prompt.runs.protocols import PHASES, parse_run_dir

    parsed = parse_run_dir(run_dir)
    if parsed is None or parsed[5] < 0:
        return {}
    phase, dataset, shots, trainer, _config, seed = parsed
    identity = {"seed": seed, "trainer": trainer, "subsample_classes": PHASES[phase][1]}
    if phase != "test_all":
        identity["num_shots"] = shots
    info = by_key(dataset)
    if info is not None:
        identity["dataset"] = info.name
    return identity


def result_problem(data, expect=None):
    """Why results.json's content is not a valid result (None when it is). `expect`:
    {key: value} it must agree with (seed, subsample_classes, num_shots, trainer, dataset)."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    acc = data.get("accuracy")
    if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not math.isfinite(acc):
        return f"has no numeric accuracy (found {acc!r})"
    if not 0 <= acc <= 100:
        return f"has accuracy {acc}, outside 0..100"
    for key, value in (expect or {}).items():
        if key in data and data[key] != value:
            return (f"says {key} {data[key]!r}, but its run folder is for {value!r}: it is "
                    "another run's result (copied or moved here?). Put it back in its own run "
                    "folder, or delete it and run this one")
    return None


def read_run(run_dir, expect=None):
    """The RunState of a run folder. results.json must agree with the folder's place in the
    layout (`folder_identity`) and with `expect`, else the run is broken."""
    folder = Path(run_dir)
    path = folder / RESULT_FILE
    if path.is_file():
        try:
            data = read_json(path)
        except DuplicateKeyError as exc:
            return RunState("broken", folder, detail=str(exc))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return RunState("broken", folder, detail=f"{path} is unreadable or truncated ({exc})")
        problem = result_problem(data, {**folder_identity(folder), **(expect or {})})
        if problem:
            return RunState("broken", folder, detail=f"{path} {problem}")
        return RunState("finished", folder, accuracy=float(data["accuracy"]),
                        epoch=data.get("epoch"), result=data)
    failed = folder / FAILED_FILE
    if failed.is_file():
        try:
            info = read_json(failed)
            detail = f"exit code {info.get('exit_code')} at {info.get('when')}"
        except (OSError, UnicodeDecodeError, ValueError):
            detail = "see its log"
        return RunState("failed", folder, detail=detail)
    if folder.is_dir() and any(folder.iterdir()):
        epoch = last_checkpoint_epoch(folder)
        detail = f"saved epoch {epoch}" if epoch else "no checkpoint"
        return RunState("interrupted", folder, epoch=epoch, detail=detail)
    return RunState("absent", folder)


def read_accuracy(run_dir):
    """The accuracy of a finished run, else None."""
    state = read_run(run_dir)
    return state.accuracy if state.finished else None


def last_checkpoint_epoch(run_dir):
    """The last epoch Dassl saved in a run folder (from each model's `checkpoint` file), or
    None when there is none."""
    epochs = []
    for marker in glob.glob(os.path.join(str(run_dir), "*", "checkpoint")):
        try:
            with open(marker, encoding="utf-8") as f:
                last = f.readline().strip()
        except OSError:
            continue
        tail = last.rsplit("-", 1)[-1]
        if tail.isdigit():
            epochs.append(int(tail))
    return max(epochs) if epochs else None


def latest_log(run_dir):
    """The run's newest Dassl log: log.txt, or log.txt-<time> that Dassl writes when a resumed
    run finds log.txt already there. None when there is none."""
    logs = [p for p in Path(run_dir).glob(LOG_FILE + "*") if p.is_file()]
    return max(logs, key=lambda p: (p.stat().st_mtime_ns, p.name)) if logs else None


def mark_failed(run_dir, exit_code, command):
    atomic_write_json(Path(run_dir) / FAILED_FILE, {
        "exit_code": exit_code, "command": list(command),
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})


def clear_failed(run_dir):
    try:
        os.unlink(Path(run_dir) / FAILED_FILE)
    except FileNotFoundError:
        pass
