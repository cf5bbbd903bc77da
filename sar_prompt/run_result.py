"""The per-run result file: each evaluation writes `results.json` in its run folder, and
the base-to-new table (`sar_prompt.results`) is built from those files, not from logs."""
import datetime
import json
from pathlib import Path

from .io import atomic_write_json

RESULT_FILE = "results.json"


def write_run_result(cfg, accuracy, epoch, checkpoint=None, resumes=()):
    payload = {
        "accuracy": float(accuracy),
        "split": cfg.TEST.SPLIT,
        "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
        "dataset": cfg.DATASET.NAME,
        "trainer": cfg.TRAINER.NAME,
        "seed": cfg.SEED,
        "num_shots": cfg.DATASET.NUM_SHOTS,
        "epoch": epoch,
        "checkpoint": checkpoint,
        "resumed_at_epochs": [r.get("epoch") for r in resumes],
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path = Path(cfg.OUTPUT_DIR) / RESULT_FILE
    atomic_write_json(path, payload)
    print(f"[sar_prompt] result written to {path}")
    return path


def read_accuracy(run_dir):
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["accuracy"])
