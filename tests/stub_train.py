"""A stand-in for `python -m sar_prompt.train` in the runner's tests: it takes train.py's
command line and behaves like a run (a log, checkpoints, progress events when quiet, a
results.json) in milliseconds, without torch. Its accuracy is a function of the seed, the
dataset and the phase, so tests can check which run produced which number. It also records
the GPU it was given and holds a lock file per GPU while it runs, so tests can see that two
runs never share a GPU at the same time.

Like train.py it writes the run's fingerprint.json (the resolved config, resolved by
train.py's own code, so the runner's identity checks apply), and a TRAINER.SAR.WEIGHT option
changes its accuracy, so a sweep's points have numbers of their own.

Environment: STUB_FAIL=<dataset> makes that dataset's training fail, STUB_DIE=<dataset> its
process die; STUB_SLEEP=<seconds>.
"""
import hashlib
import json
import os
import sys
import time
from pathlib import Path


def arg(argv, flag, default=None):
    return argv[argv.index(flag) + 1] if flag in argv else default


def opt(argv, key, default=None):
    return argv[argv.index(key) + 1] if key in argv else default


def accuracy(dataset, seed, subsample, weight=None):
    key = f"{dataset}/{seed}/{subsample}" + (f"/{float(weight)}" if weight is not None else "")
    digest = hashlib.sha256(key.encode()).digest()
    return 50 + digest[0] / 255 * 40


def write_fingerprint(argv, out):
    """fingerprint.json's identity part, as train.py resolves the config (without importing
    torch: sar_prompt's Dassl registration hook is switched off)."""
    import importlib.util

    if importlib.util.find_spec("dassl") is None:
        return  # a test that spares its tasks Dassl: no fingerprint, no identity check
    import sar_prompt  # noqa: F401  (installs the hook removed below)

    sys.meta_path[:] = [f for f in sys.meta_path
                        if type(f).__name__ != "_RegisterWhenDasslLoads"]
    from sar_prompt.runs import fingerprint
    from sar_prompt.runs import identity

    trainer = arg(argv, "--trainer")
    fp = identity.requested_from_argv(argv, sar=trainer.endswith("SAR"))
    fp.update(schema=fingerprint.SCHEMA, version=fingerprint.VERSION)
    (out / fingerprint.FILE).write_text(json.dumps(fp))



def main(argv):
    out = Path(arg(argv, "--output-dir"))
    out.mkdir(parents=True, exist_ok=True)
    seed = int(arg(argv, "--seed"))
    dataset = Path(arg(argv, "--dataset-config-file")).stem
    subsample = opt(argv, "DATASET.SUBSAMPLE_CLASSES", "all")
    eval_only = "--eval-only" in argv
    if dataset == os.environ.get("STUB_DIE"):
        os._exit(9)  # a crash that takes its process with it
    from sar_prompt.runs import lock as run_lock  # one writer per folder, as in train.py

    try:
        held = run_lock.acquire(out)
    except run_lock.RunBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # the runner's worker goes on to other runs: let go of the folder, as train.py does
        return _run(argv, out, seed, dataset, subsample, eval_only)
    finally:
        held.release()


def _run(argv, out, seed, dataset, subsample, eval_only):
    write_fingerprint(argv, out)
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    lock = Path(os.environ["STUB_LOCKS"]) / f"gpu{gpu}.lock" if os.environ.get("STUB_LOCKS") \
        else None
    if lock is not None:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
        except FileExistsError:
            (out / "gpu_conflict").write_text(gpu)
            lock = None
    try:
        log = out / "log.txt"
        if log.exists():
            log = out / f"log.txt-{time.strftime('%Y-%m-%d-%H-%M-%S')}"
        quiet = os.environ.get("SAR_PROMPT_QUIET") == "1"
        with open(log, "w") as f:
            f.write("** Config **\n(stub)\n")
            f.write(f"argv: {' '.join(argv)}\n")
            if not quiet:
                print("** Config **\n(stub)", flush=True)
            if not eval_only:
                max_epoch = 2
                marker = out / "prompt_learner" / "checkpoint"
                start = 0
                if marker.is_file():
                    start = int(marker.read_text().strip().rsplit("-", 1)[1])
                    f.write(f"resuming from epoch {start}\n")
                for epoch in range(start, max_epoch):
                    for batch in range(1, 3):
                        if quiet:
                            print("@sar_prompt.runs.progress " + json.dumps(
                                {"kind": "train", "epoch": epoch, "max_epoch": max_epoch,
                                 "batch": batch, "num_batches": 2, "loss": 1.0 / (batch + epoch)}),
                                flush=True)
                        f.write(f"epoch [{epoch + 1}/{max_epoch}] batch [{batch}/2] loss 1.0\n")
                    if dataset == os.environ.get("STUB_FAIL"):
                        f.write("Traceback (most recent call last):\nRuntimeError: stub failure\n")
                        return 1
                    marker.parent.mkdir(exist_ok=True)
                    (marker.parent / f"model.pth.tar-{epoch + 1}").write_text("weights")
                    marker.write_text(f"model.pth.tar-{epoch + 1}\n")
                    time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
            epoch = int(arg(argv, "--load-epoch", 0) or 0) if eval_only else 2
            acc = accuracy(dataset, seed, subsample, opt(argv, "TRAINER.SAR.WEIGHT"))
            f.write(f"* accuracy: {acc:.2f}%\n")
        (out / "stub_gpu").write_text(gpu)
        (out / "stub_pid").write_text(str(os.getpid()))
        shots = opt(argv, "DATASET.NUM_SHOTS")
        (out / "results.json").write_text(json.dumps({
            "accuracy": acc, "seed": seed, "subsample_classes": subsample,
            "num_shots": int(shots) if shots is not None else -1, "epoch": epoch,
            "checkpoint": {"epoch": epoch} if eval_only else None,
            "model_dir": arg(argv, "--model-dir")}))
        return 0
    finally:
        if lock is not None:
            lock.unlink()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
