"""Quiet runs: what a training process shows when the benchmark runner starts it.

The runner sets SAR_PROMPT_QUIET=1. train.py then sends Dassl's whole output (config dump,
system info, per-batch lines, warnings, tracebacks) only to the run's log.txt, and writes one
machine-readable progress event per step to its real stdout, which the runner reads to draw
a progress bar (epoch, loss, ETA) and prints nothing else from. Anything printed before the
log file exists (a bad config, a missing dataset) still reaches the runner, which shows it
when the run fails.

    {"kind": "train", "epoch": 0, "max_epoch": 10, "batch": 3, "num_batches": 50, "loss": 1.2}
    {"kind": "eval", "batch": 7, "num_batches": 20}
"""
import json
import os
import sys
import time

QUIET_ENV = "SAR_PROMPT_QUIET"
EVENT_PREFIX = "@sar_prompt.runs.progress "
MIN_INTERVAL_S = 0.2  # events at most this often, plus the last batch of each epoch


def quiet_requested():
    return os.environ.get(QUIET_ENV) == "1"


def parse_event(line):
    """The event of a progress line, else None (an ordinary output line)."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


class _LogStream:
    """sys.stderr once Dassl's logger exists: everything goes to log.txt (through the logger,
    whose console is muted)."""

    def __init__(self, logger):
        self.logger = logger
        self.encoding = "utf-8"

    def write(self, text):
        self.logger.write(text)
        return len(text)

    def flush(self):
        self.logger.flush()

    def isatty(self):
        return False


class QuietRun:
    """Set up before anything is printed; `after_logger()` once Dassl's setup_logger ran;
    `attach(trainer)` once the trainer is built."""

    def __init__(self, events=None):
        # the runner's pipe, kept before stdout is muted; line-buffered so events arrive live
        self.events = events or os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
        self._muted = open(os.devnull, "w")
        sys.stdout = self._muted  # Dassl's logger tees to the current stdout: to nothing
        self._last = 0.0

    def after_logger(self):
        sys.stderr = _LogStream(sys.stdout)

    def emit(self, force=False, **event):
        now = time.monotonic()
        if force or now - self._last >= MIN_INTERVAL_S:
            self._last = now
            self.events.write(EVENT_PREFIX + json.dumps(event) + "\n")

    def attach(self, trainer):
        """Report each training step and each evaluation batch of a Dassl trainer."""
        forward_backward, test = trainer.forward_backward, trainer.test
        parse_batch_test = trainer.parse_batch_test
        evaluation = {"batch": 0, "num_batches": 0}

        def on_step(*args, **kwargs):
            summary = forward_backward(*args, **kwargs)
            loss = summary.get("loss") if isinstance(summary, dict) else None
            last = trainer.batch_idx + 1 == trainer.num_batches
            self.emit(force=last, kind="train", epoch=trainer.epoch, max_epoch=trainer.max_epoch,
                      batch=trainer.batch_idx + 1, num_batches=trainer.num_batches,
                      loss=None if loss is None else float(loss))
            return summary

        def on_test(split=None):
            which = split or trainer.cfg.TEST.SPLIT
            loader = trainer.val_loader if which == "val" and trainer.val_loader is not None \
                else trainer.test_loader
            evaluation.update(batch=0, num_batches=len(loader))
            return test(split)

        def on_test_batch(batch):
            evaluation["batch"] += 1
            self.emit(force=evaluation["batch"] == evaluation["num_batches"], kind="eval",
                      **evaluation)
            return parse_batch_test(batch)

        trainer.forward_backward = on_step
        trainer.test = on_test
        trainer.parse_batch_test = on_test_batch
