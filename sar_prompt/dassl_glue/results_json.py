"""The results.json an evaluation writes in its run folder (CLIPTrainer.record_result):
the accuracy and what it belongs to. Read back, checked and tabulated by
sar_prompt.runs.result_file and sar_prompt.results; no Dassl needed for either."""
import datetime
from pathlib import Path

from sar_prompt.io import atomic_write_json

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
