"""Peak memory of one training step, each case in a fresh process (then a second step, whose
loss is recorded too):

    python -m benchmarks.memory --case CASE --arch ARCH --weights FILE --device DEVICE \
        --workdir DIR [--novel-file FILE] [--classes N] [--batch-size B]

prints one JSON line. CPU: the resident set just before the step and the step's own peak
(Linux: the kernel's peak count, VmHWM, restarted just before the step), hence how much the
step adds; also the process's lifetime peak (getrusage ru_maxrss), which includes building
the model. CUDA: torch.cuda.max_memory_allocated over the step alone.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from .build import REPO, distinct_from, write_novel_list

CASES = {
    # case: (trainer, extra config options)
    "CoOp": ("CoOp", []),
    "CoOpSAR": ("CoOpSAR", ["TRAINER.SAR.NUM_NOVEL", "0"]),
    "CoOpSAR low-memory": ("CoOpSAR", ["TRAINER.SAR.NUM_NOVEL", "0",
                                       "MODEL.TEXT_ENCODER.CHECKPOINT", "True",
                                       "MODEL.TEXT_ENCODER.CHUNK_SIZE", "128"]),
}
# glibc keeps freed blocks below a threshold that grows up to 32 MiB as big blocks are freed,
# so the resident set would count memory the step no longer uses: a fixed threshold returns
# every block of 128 KiB or more to the system when freed, and RSS follows what is in use.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
              "MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}
LOW_MEMORY_NODE = "TEXT_ENCODER"  # MODEL.TEXT_ENCODER: keys of the low-memory option
DEFAULT_CLASSES = 500


def _mib(kib):
    return kib / 1024.0  # ru_maxrss is in KiB on Linux


def _current_rss_mib():
    """Resident set size now (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _reset_peak_rss():
    """Restart the kernel's peak-RSS count (VmHWM) from the current RSS (Linux >= 4.0), so
    the peak measured next is the step's own, not building the model's. False elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib():
    """VmHWM (peak RSS since the last reset) from /proc, or None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def low_memory_available():
    """Whether this sar_prompt declares the low-memory text encoder's config keys."""
    from dassl.config import get_cfg_default
    from sar_prompt import extend_cfg

    return LOW_MEMORY_NODE in extend_cfg(get_cfg_default()).MODEL


def unavailable(case):
    return {"case": case, "status": "unavailable",
            "reason": f"this sar_prompt declares no MODEL.{LOW_MEMORY_NODE} keys"}


def measure(case, setup, classes, novel_file, batch_size):
    import torch
    from sar_prompt.classnames import class_names

    from .build import build_trainer, make_cfg, synthetic_batch

    trainer_name, opts = CASES[case]
    if case.endswith("low-memory") and not low_memory_available():
        return unavailable(case)
    if trainer_name.endswith("SAR"):
        opts = opts + ["TRAINER.SAR.NOVEL_FILE", str(novel_file)]
    names = class_names("imagenet")[:classes]
    cfg = make_cfg(setup, trainer_name, "CoOp", dataset="ImageNet", batch_size=batch_size,
                   opts=opts)
    trainer = build_trainer(cfg, names)
    batch = synthetic_batch(setup, cfg.DATALOADER.TRAIN_X.BATCH_SIZE, len(names))
    cuda = setup.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()
    rss_before = _current_rss_mib()
    peak_before = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    step_peak_known = _reset_peak_rss()
    first = trainer.forward_backward(batch)
    if cuda:
        torch.cuda.synchronize()
    peak_rss = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    step_peak = _peak_rss_mib() if step_peak_known else None
    cuda_peak = torch.cuda.max_memory_allocated() if cuda else None
    # A second step's loss depends on the first step's gradients too, and its SAR term is
    # not 0 (at the start the learned prompt can equal the hand-crafted one).
    second = trainer.forward_backward(batch)
    record = {"case": case, "status": "ok", "trainer": trainer_name,
              "batch_size": cfg.DATALOADER.TRAIN_X.BATCH_SIZE, "base_classes": len(names),
              "novel_classes": len(trainer.novel_tokens) if hasattr(trainer, "novel_tokens")
              else 0, "options": dict(zip(opts[::2], opts[1::2])),
              "losses": [first["loss"], second["loss"]],
              "sar_terms": [step.get("sar") for step in (first, second)],
              "rss_before_step_mib": rss_before, "peak_rss_before_step_mib": peak_before,
              "peak_rss_mib": peak_rss, "step_peak_rss_mib": step_peak,
              "step_rss_growth_mib": (step_peak - rss_before
                                      if step_peak is not None and rss_before is not None
                                      else None)}
    if cuda:
        record.update(cuda_allocated_before_step_mib=allocated_before / 2 ** 20,
                      cuda_peak_step_mib=cuda_peak / 2 ** 20)
    return record


def novel_list(setup, classes):
    """ImageNet's classes after the first `classes`, as a list file for ImageNet."""
    from sar_prompt.classnames import class_names

    names = class_names("imagenet")
    base, rest = names[:classes], names[classes:]
    return write_novel_list(
        setup.workdir / "memory_novel_classes.json", "ImageNet", distinct_from(rest, base),
        f"benchmark input: ImageNet's class names after the first {classes} (which are the "
        "base classes), to measure SAR's memory with many novel classes")


def section(setup, opts):
    """Every case in its own process; the two SAR cases' losses side by side."""
    classes = opts.memory_classes
    path, count = novel_list(setup, classes)
    cases = []
    for case in CASES:
        if case.endswith("low-memory") and not low_memory_available():
            cases.append(unavailable(case))  # nothing to measure: no process needed
            continue
        argv = [sys.executable, "-m", "benchmarks.memory", "--case", case, "--arch", setup.arch,
                "--weights", str(setup.weights), "--device", setup.device,
                "--workdir", str(setup.workdir), "--novel-file", str(path),
                "--classes", str(classes)]
        if opts.batch_size:
            argv += ["--batch-size", str(opts.batch_size)]
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, **MALLOC_ENV})
        if done.returncode != 0:
            cases.append({"case": case, "status": "failed", "exit_code": done.returncode,
                          "stderr_tail": done.stderr[-2000:]})
            continue
        cases.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out = {"classes": classes, "novel_file_names": count, "malloc_environment": MALLOC_ENV,
           "cases": cases}
    sar = {c["case"]: c.get("losses") for c in cases if c["case"].startswith("CoOpSAR")}
    a, b = sar.values()
    compared = a is not None and b is not None
    out["losses"] = {**sar,
                     "abs_difference": [abs(x - y) for x, y in zip(a, b)] if compared else None,
                     "identical": a == b if compared else None}
    return out


def main(argv=None):
    from sar_prompt.errors import run_command

    from .build import Setup

    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=list(CASES), required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--workdir", required=True)
    p.add_argument("--novel-file", default="")
    p.add_argument("--classes", type=int, default=DEFAULT_CLASSES)
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args(argv)

    def command():
        setup = Setup(args.arch, Path(args.weights), args.device, Path(args.workdir))
        record = measure(args.case, setup, args.classes, args.novel_file, args.batch_size)
        print(json.dumps(record))

    return run_command(command)


if __name__ == "__main__":
    sys.exit(main())
