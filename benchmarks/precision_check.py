"""The GPU check's precision part: every method and SAR variant a few training steps in fp32,
fp16 and amp on the device, and in fp32 on the CPU, on the same synthetic batches.

The learning rate is 0, so every step of every run sees the same parameters: a step's loss
in fp16 or amp against the same step in fp32 measures that step's precision, not how far
two trajectories drift apart (an amp run's gradient scaler skips the first steps, whose
half-precision gradients overflow at its initial scale). The update still runs (optimizer,
gradient scaler), so a non-finite gradient or a dtype error shows.
"""
import gc
import math
from contextlib import contextmanager
from pathlib import Path

import torch

from .build import METHODS, build_trainer, make_cfg, synthetic_batch

PRECISIONS = ("fp32", "fp16", "amp")
STILL = ["OPTIM.LR", "0.0", "OPTIM.WARMUP_CONS_LR", "0.0"]


def fp16_ulp(x):
    """The spacing of fp16 numbers at |x| (2^-8 between 4 and 8)."""
    return 2.0 ** (math.floor(math.log2(abs(x))) - 10) if x else 2.0 ** -24


def ulps(values, reference):
    """The largest difference of `values` from `reference`, in fp16 ulps of the reference."""
    return max(abs(v - r) / fp16_ulp(r) for v, r in zip(values, reference))


@contextmanager
def sar_dtypes():
    """The dtypes (learned matrix, target matrix, loss) SAR computes with, as a set."""
    import sar_prompt.sar as sar

    seen, original = set(), sar.similarity_alignment_loss

    def recording(learned, target, *args, **kwargs):
        loss = original(learned, target, *args, **kwargs)
        seen.add((str(learned.dtype), str(target.dtype), str(loss.dtype)))
        return loss

    sar.similarity_alignment_loss = recording
    try:
        yield seen
    finally:
        sar.similarity_alignment_loss = original


def _node(trainer_name):
    from dassl.engine import TRAINER_REGISTRY

    import sar_prompt

    sar_prompt.register()
    return TRAINER_REGISTRY.get(trainer_name).config_node


def novel_list(workdir, names, count):
    """`count` names of the shipped Caltech101 novel list that are not among `names`, as a
    list file (few, so that the CPU's fp32 runs encode SAR's target, PromptSRC's 60
    templates for each name, in seconds)."""
    import json

    from sar_prompt import novel

    from .build import distinct_from, write_novel_list

    shipped = novel.default_path("caltech101")
    chosen = distinct_from(json.loads(shipped.read_text(encoding="utf-8"))["novel_classes"],
                           names)[:count]
    path, _ = write_novel_list(Path(workdir) / "precision_novel_classes.json", "Caltech101",
                               chosen, f"GPU check input: {count} names of {shipped.name}")
    return path


def train_steps(setup, trainer_name, method, precision, names, steps, batch_size,
                novel_file=None):
    """One run: `steps` training steps at learning rate 0; its per-step summaries, the
    learnable tensors' dtypes and SAR's dtypes. SAR uses every novel class each step."""
    opts = [f"TRAINER.{_node(trainer_name)}.PREC", precision, *STILL,
            "TRAINER.SAR.NUM_NOVEL", "0"]
    if novel_file:
        opts += ["TRAINER.SAR.NOVEL_FILE", str(novel_file)]
    cfg = make_cfg(setup, trainer_name, method, batch_size=batch_size, opts=opts)
    trainer = build_trainer(cfg, names)
    batch = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
    record = {"precision": trainer.precision, "batch_size": batch, "steps": []}
    with sar_dtypes() as seen:
        for i in range(steps):
            trainer.batch_idx = i
            record["steps"].append(trainer.forward_backward(
                synthetic_batch(setup, batch, len(names), seed=i)))
    record["loss"] = [s["loss"] for s in record["steps"]]
    record["learnable_dtypes"] = {k: str(v.dtype)[6:] for k, v in
                                  trainer.model.prompt_learner.state_dict().items()}
    record["sar_dtypes"] = sorted(list(d) for d in seen)
    record["clip_dtype"] = str(trainer.clip_model.dtype)[6:]
    trainer.__dict__.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return record


def section(setup, cpu_setup, names, steps, max_batch, tolerance_ulps, methods=METHODS,
            progress=print, saved=lambda out: None):
    """{classes, novel_file, steps, variants: {variant: {runs: {precision or "cpu fp32":
    run}, comparisons}}} and the checks, as (name, passed, detail). SAR's novel classes: as
    many as `names`, from the shipped list, all of them every step. `saved(out)` is called
    after each variant."""
    novel_file = novel_list(setup.workdir, names, len(names))
    variants, checks = {}, []
    out = {"classes": list(names), "novel_file": str(novel_file), "steps": steps,
           "variants": variants}
    for method in methods:
        for name in (method, method + "SAR"):
            batch_size = min(_config_batch(setup, name, method), max_batch)
            runs = {}
            for precision in PRECISIONS:
                progress(f"[gpu check] {name} {precision} on {setup.device}")
                runs[precision] = train_steps(setup, name, method, precision, names, steps,
                                              batch_size, novel_file)
            if cpu_setup is not None:
                progress(f"[gpu check] {name} fp32 on cpu")
                runs["cpu fp32"] = train_steps(cpu_setup, name, method, "fp32", names, steps,
                                               batch_size, novel_file)
            variants[name] = {"runs": runs, "comparisons": _compare(runs)}
            checks += _checks(name, runs, variants[name]["comparisons"], tolerance_ulps,
                              variants.get(method))
            saved(out)  # what is done is kept if the run is stopped
    return out, checks


def _config_batch(setup, name, method):
    return make_cfg(setup, name, method).DATALOADER.TRAIN_X.BATCH_SIZE


def _compare(runs):
    fp32 = runs["fp32"]["loss"]
    cpu = runs.get("cpu fp32", {}).get("loss")
    out = {}
    for precision in ("fp16", "amp", "fp32"):
        loss = runs[precision]["loss"]
        if precision != "fp32":
            out[f"{precision} vs fp32, ulps"] = ulps(loss, fp32)
        if cpu is not None:
            out[f"{precision} vs cpu fp32, ulps"] = ulps(loss, cpu)
    if cpu is not None:
        out["fp32 vs cpu fp32, relative"] = max(abs(a - b) / abs(b) for a, b in zip(fp32, cpu))
    return out


def _checks(name, runs, comparisons, tolerance, method_record):
    checks = []
    finite = all(math.isfinite(v) for r in runs.values() for s in r["steps"]
                 for k, v in s.items() if k != "acc")
    checks.append((f"{name}: every loss and term finite", finite, ""))
    for key, value in comparisons.items():
        if key.endswith("ulps"):
            checks.append((f"{name}: {key} <= {tolerance}", value <= tolerance, f"{value:.2f}"))
    if name.endswith("SAR"):
        fp32_only = all(r["sar_dtypes"] == [["torch.float32"] * 3] for r in runs.values())
        checks.append((f"{name}: SAR's matrices and loss fp32 in every precision", fp32_only,
                       str({p: r["sar_dtypes"] for p, r in runs.items()})))
        if method_record is not None:
            same = all(runs[p]["learnable_dtypes"] == method_record["runs"][p]["learnable_dtypes"]
                       for p in PRECISIONS)
            checks.append((f"{name}: learnable dtypes are the method's", same, ""))
    for precision in ("fp32", "amp"):
        dtypes = set(runs[precision]["learnable_dtypes"].values())
        checks.append((f"{name}: {precision} trains fp32 tensors", dtypes == {"float32"},
                       str(sorted(dtypes))))
    half = runs["fp16"]
    checks.append((f"{name}: fp16 keeps CLIP in half precision",
                   half["precision"] == "fp16" and half["clip_dtype"] == "float16",
                   f"{half['precision']}, {half['clip_dtype']}"))
    return checks
