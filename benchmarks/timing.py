"""Interleaved timing: every variant once per round, the order rotated each round, so all
variants see the same machine load; ratios are taken within a round, then their median."""
import statistics
import sys
import time

import torch


def synchronizer(device):
    """A function that waits for the device's queued work (CUDA runs asynchronously)."""
    if str(device).startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def rounds(variants, repeats, warmup=1, sync=lambda: None, desc="timing"):
    """Run `variants` ({name: fn}) in `warmup` uncounted rounds, then `repeats` rounds, the
    order rotated each round (A B C, B C A, ...). Returns {name: [ms per round]}."""
    from tqdm import tqdm

    names = list(variants)
    times = {name: [] for name in names}
    with tqdm(total=(warmup + repeats) * len(names), desc=desc, file=sys.stderr,
              leave=False, disable=None) as bar:
        for r in range(warmup + repeats):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                elapsed = timed(variants[name], sync)
                if r >= warmup:
                    times[name].append(elapsed * 1000.0)
                bar.update()
    return times


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratio(times, numerator, denominator, meaning):
    """numerator / denominator in each round, and their median; also the ratio of the two
    fastest rounds (load on a shared machine only ever adds time, so each variant's fastest
    round is its least disturbed one)."""
    per_round = [a / b for a, b in zip(times[numerator], times[denominator])]
    return {"numerator": numerator, "denominator": denominator, "meaning": meaning,
            "per_round": per_round, "median": statistics.median(per_round),
            "fastest": min(times[numerator]) / min(times[denominator])}


def group(times, ratios, **info):
    """A JSON record of one set of interleaved variants: raw times, summaries, ratios."""
    return {**info, "timings_ms": times, "summary_ms": {k: summary(v) for k, v in times.items()},
            "ratios": {r.pop("label"): r for r in ratios}}


def labelled(label, times, numerator, denominator, meaning):
    return {"label": label, **ratio(times, numerator, denominator, meaning)}
