"""A variant's arithmetic: the floating-point operations of one call, counted by torch's
`FlopCounterMode` (matrix products, convolutions and attention, forward and backward; the
element-wise operations it leaves out are a small share of these steps).

On a CPU a step's time follows its arithmetic, so a work ratio is what an exact
computation should expect of the time ratio: the operations SAR adds to a step (its novel
classes' text pass, forward and backward) cannot be skipped without changing the loss. A
time ratio below its work ratio means the added operations ran more efficiently than the
rest (a larger joined text pass); one far above it points at overhead worth removing."""
from torch.utils.flop_counter import FlopCounterMode


def flops(fn):
    """Floating-point operations of one call of `fn`."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def count(variants):
    """{name: GFLOP of one call} for `variants` ({name: fn}). Call it after the timed
    rounds: one-time work (a method's first-step caches) is then done and not counted."""
    return {name: flops(fn) / 1e9 for name, fn in variants.items()}


def add_work(group, gflop):
    """Record `gflop` in a timing group (timing.group) and give each of its ratios the same
    ratio of work."""
    group["gflop"] = gflop
    for ratio in group["ratios"].values():
        ratio["work"] = gflop[ratio["numerator"]] / gflop[ratio["denominator"]]
    return group
