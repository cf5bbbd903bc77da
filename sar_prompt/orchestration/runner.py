"""Running jobs (see sar_prompt/runs/protocols.py): one after another, or one per GPU from
a queue.

Each run is `python -m sar_prompt.train`'s main, as in the CoOp family's scripts, and the
runs of a job (a seed's training and its evaluations) share one process (worker.py:
start-up costs seconds; a run's numbers do not depend on it). A finished run (valid
results.json) is skipped; a broken results.json is moved aside and the run redone; an
interrupted training run resumes from its last saved epoch (Dassl does that when its folder
holds a checkpoint); a failed run is recorded (failed.json), reported with the tail of its
log, and the next jobs go on; only the evaluations that need its checkpoint wait.

Every run first takes its folder's lock (sar_prompt/runs/lock.py; a folder another process
is writing is reported `busy`), and the folder must belong to the run's config
(sar_prompt/runs/ownership.py): one whose fingerprint says otherwise is a `conflict`,
reported with the keys that differ, and is neither skipped, resumed, run nor marked failed
(unless `Settings.move_aside`: it is renamed aside and the run starts afresh). The lock
passes to the run's train.py in the worker.

Quiet by default: one line when a run starts and one when it ends (dataset, trainer, seed,
phase, accuracy, time), a progress bar while it trains (epoch, loss, ETA) when the terminal
is interactive, and Dassl's full output in each run's log.txt. `verbose` shows it all.
"""
import datetime
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sar_prompt.errors import SarPromptError, os_error_message
from sar_prompt.io import open_append
from sar_prompt.orchestration.console import Console
from sar_prompt.orchestration.worker import DEFAULT_ENTRY, EXIT_EVENT
from sar_prompt.runs import lock as run_lock
from sar_prompt.runs import ownership
from sar_prompt.runs.progress import QUIET_ENV, parse_event
from sar_prompt.runs.result_file import (RESULT_FILE, clear_failed, last_checkpoint_epoch,
                                         latest_log, mark_failed, read_run)

CONSOLE_FILE = "console.txt"  # what a quiet run printed outside Dassl's log, if anything
TAIL_LINES = 20


@dataclass
class Settings:
    """How to execute runs (picklable: Slurm jobs carry it)."""
    python: str = sys.executable
    train: str = DEFAULT_ENTRY  # what a run runs: a module or script with main(argv)
    verbose: bool = False
    progress: object = None   # True / False; None: when stderr is a terminal
    env: dict = field(default_factory=dict)
    move_aside: bool = False  # a folder of another config is renamed aside, not refused

    def command(self, run, load_epoch=None):
        """The run as a process of its own (what failed.json records, what a dry run shows)."""
        entry = [self.train] if self.train.endswith(".py") else ["-m", self.train]
        return [self.python, *entry, *run.argv(load_epoch)]

    def worker_command(self):
        return module_command(self.python, "sar_prompt.orchestration.worker", self.train)


# `python -m` puts the working directory first on sys.path, where a checkout's sar_prompt/
# (run from its root) would shadow the installed package, which alone has every subpackage.
# Runs the module as -m does, without that entry (scripts/bench.sh does the same).
_RUN_MODULE = ("import runpy, sys; sys.path[:1] == [''] and sys.path.pop(0); "
               "runpy.run_module({!r}, run_name='__main__', alter_sys=True)")


def module_command(python, module, *args):
    """`python -m MODULE ARGS` that imports the installed package, whatever the directory."""
    return [python, "-c", _RUN_MODULE.format(module), *args]


@dataclass
class Outcome:
    run: object
    status: str               # done | skipped | failed | blocked | conflict | busy
    accuracy: float = None
    seconds: float = 0.0
    detail: str = ""
    log: str = None


def _duration(seconds):
    return str(datetime.timedelta(seconds=round(seconds)))


def expectations(run):
    """What a run's results.json must agree with."""
    expect = {"seed": run.seed, "subsample_classes": run.subsample, "trainer": run.trainer}
    if run.few_shot:
        expect["num_shots"] = run.shots
    return expect


# -- one run ---------------------------------------------------------------------------------
def _tail(path, n=TAIL_LINES):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=n)]
    except OSError:
        return []


class Worker:
    """The process that runs a job's runs, one after another (worker.py): started at the
    job's first run that needs it, started again if it dies, closed when the job ends."""

    def __init__(self, settings, gpu=None, active=None):
        self.settings, self.gpu, self.active = settings, gpu, active
        self.proc = None

    def _start(self):
        env = dict(os.environ, **self.settings.env)
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpu)
        if not self.settings.verbose:
            env[QUIET_ENV] = "1"
            env["TQDM_DISABLE"] = "1"  # Dassl's own evaluation bar would land in log.txt
        self.proc = subprocess.Popen(self.settings.worker_command(), env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     errors="replace")
        if self.active is not None:
            self.active.add(self.proc)

    def run(self, argv, env, on_line):
        """Hand the worker one run; `on_line(line, event)` for each line it prints (event:
        its progress event, or None); the run's exit code."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps({"argv": list(argv), "env": env}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died at start-up: its output and exit code tell why
        for line in self.proc.stdout:
            event = parse_event(line)
            if event is not None and event.get("kind") == EXIT_EVENT:
                return int(event.get("code", 1))
            on_line(line, event)
        code = self.proc.wait()  # it ended before answering: a crash
        self._forget()
        return code or 1

    def _forget(self):
        if self.active is not None and self.proc is not None:
            self.active.discard(self.proc)
        self.proc = None

    def close(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # the worker ends when its requests do
        except OSError:
            pass
        for line in self.proc.stdout:  # what it printed while shutting down, if anything
            sys.stdout.write(line)
        self.proc.wait()
        self._forget()

    def terminate(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self._forget()


def spawn(run, settings, console, slot=0, worker=None, load_epoch=None, lock=None):
    """Run `run` in the job's worker and wait for it: (exit code, lines it printed outside
    its log). `lock`: the run folder's lock, held here, which the worker's run inherits."""
    env = run_lock.handoff_env(lock) if lock is not None else {}
    Path(run.output_dir).mkdir(parents=True, exist_ok=True)
    tail = deque(maxlen=TAIL_LINES)
    captured = None

    def on_line(line, event):
        nonlocal captured
        if event is not None:
            console.progress(slot, run, event)
            return
        if settings.verbose:
            console.out.write(line)
            console.out.flush()
            return
        tail.append(line.rstrip("\n"))
        if captured is None:
            captured = open_append(Path(run.output_dir) / CONSOLE_FILE)
        captured.write(line)
        captured.flush()

    try:
        return worker.run(run.argv(load_epoch), env, on_line), list(tail)
    except BaseException:  # interrupted: the run must not outlive us
        worker.terminate()
        raise
    finally:
        if captured is not None:
            captured.close()
        console.finish_bar(slot)


def _load_epoch(run):
    """The epoch an evaluation loads: the training run's last (from its results.json, else
    its checkpoint file)."""
    state = read_run(run.train_dir)
    epoch = state.epoch if state.finished else None
    return epoch if isinstance(epoch, int) else last_checkpoint_epoch(run.train_dir)


def folder_clash(run, light=False):
    """The ownership.Clash of a run's folder with the run's config, or None. None too when
    the config cannot be resolved here (no Dassl, a bad key): the run itself then says why.
    `light`: the config resolved without importing Dassl (a dry run; the project's trainers
    read a novel-class list when their name ends in SAR)."""
    from sar_prompt.runs import fingerprint
    from sar_prompt.runs import identity
    from sar_prompt.runs.protocols import SAR_SUFFIX

    if fingerprint.read(run.output_dir) is None and not ownership.holds_work(run.output_dir):
        return None  # nothing there to lose or to mix with (no config to resolve)

    sar = run.trainer.endswith(SAR_SUFFIX) if light else None
    try:
        requested = identity.requested_from_argv(run.argv(), sar=sar, light=light)
    except SarPromptError:
        return None
    except ModuleNotFoundError as exc:
        if exc.name != "dassl":
            raise
        return None
    return ownership.clash(run.output_dir, requested)


def execute_run(run, settings, console, slot=0, worker=None, stop=None, tag=""):
    """Run one run unless it is finished (or its folder busy, or another config's); its
    Outcome. The run folder's lock is held throughout."""
    try:
        lock = run_lock.acquire(run.output_dir, command=settings.command(run),
                                log=console.out)
    except run_lock.RunBusy as exc:
        console.line(f"{console.next_index()} {tag}{run.label}: BUSY: {exc}")
        return Outcome(run, "busy", detail=f"busy: {run_lock.describe(exc.holder)}")
    except (SarPromptError, OSError) as exc:  # a link in the folder, a read-only disk, ...
        return _unlockable(run, console, tag, exc)
    held = [lock]
    try:
        return _execute_locked(run, settings, console, slot, worker, stop, tag, held)
    finally:
        for lock in held:
            lock.release()


def _unlockable(run, console, tag, exc):
    """The Outcome of a run whose folder cannot be locked: a finished run of this config
    (on a read-only disk, say) is skipped as finished; any other is refused, with why."""
    message = str(exc) if isinstance(exc, SarPromptError) else os_error_message(exc)
    if message is None:
        raise exc
    state = read_run(run.output_dir, expectations(run))
    if state.finished and not isinstance(exc, SarPromptError) and folder_clash(run) is None:
        console.line(f"{console.next_index()} {tag}{run.label}: finished earlier, "
                     f"acc {state.accuracy:.2f}% ({run.output_dir}), skipping")
        return Outcome(run, "skipped", state.accuracy, log=str(state.log or ""))
    console.line(f"{console.next_index()} {tag}{run.label}: REFUSED: {message}")
    return Outcome(run, "failed", detail=message)


def _execute_locked(run, settings, console, slot, worker, stop, tag, held):
    lock = held[0]
    clash = folder_clash(run)
    if clash is not None:
        if not settings.move_aside:
            text = clash.message("--move-aside", "another OUTPUT")
            console.line(f"{console.next_index()} {tag}{run.label}: CONFLICT: {text}")
            return Outcome(run, "conflict", detail=clash.summary())
        lock.release()
        ownership.move_aside(run.output_dir, log=console.out)
        lock = run_lock.acquire(run.output_dir, command=settings.command(run), log=console.out)
        held.append(lock)
    state = read_run(run.output_dir, expectations(run))
    if state.finished:
        console.line(f"{console.next_index()} {tag}{run.label}: finished earlier, "
                     f"acc {state.accuracy:.2f}% ({run.output_dir}), skipping")
        return Outcome(run, "skipped", state.accuracy, log=str(state.log or ""))
    index = console.next_index()
    if state.status == "broken":
        aside = Path(run.output_dir) / f"{RESULT_FILE}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(Path(run.output_dir) / RESULT_FILE, aside)
        console.line(f"{index} {tag}{run.label}: {state.detail}; moved it to {aside.name} and "
                     "running again")
    load_epoch = None
    if run.eval_only and run.train_dir:
        load_epoch = _load_epoch(run)
        if load_epoch is None:
            detail = f"no final checkpoint in {run.train_dir}"
            console.line(f"{index} {tag}{run.label}: FAILED: {detail}")
            return Outcome(run, "failed", detail=detail)
        what = f"evaluating epoch {load_epoch}"
    elif run.eval_only:
        what = "evaluating (no training)"
    else:
        saved = last_checkpoint_epoch(run.output_dir)
        what = f"resuming training from epoch {saved}" if saved else "training"
    console.line(f"{index} {tag}{run.label}: {what} -> {run.output_dir}")
    clear_failed(run.output_dir)
    started = time.monotonic()
    code, printed = spawn(run, settings, console, slot, worker, load_epoch, lock)
    seconds = time.monotonic() - started
    state = read_run(run.output_dir, expectations(run))
    log = latest_log(run.output_dir)
    if code == 0 and state.finished:
        console.line(f"{index} {tag}{run.label}: acc {state.accuracy:.2f}% in {_duration(seconds)}")
        return Outcome(run, "done", state.accuracy, seconds, log=str(log or ""))
    if stop is not None and stop.is_set():
        return Outcome(run, "failed", seconds=seconds, detail="interrupted", log=str(log or ""))
    detail = f"exit code {code}" if code else \
        f"no valid {RESULT_FILE} ({state.detail or state.status})"
    mark_failed(run.output_dir, code, settings.command(run, load_epoch))
    lines = [f"{index} {tag}{run.label}: FAILED ({detail}) after {_duration(seconds)}"]
    shown = printed or (_tail(log) if log else [])
    if printed and log:
        shown = _tail(log, TAIL_LINES // 2) + ["  (printed outside the log:)"] + printed
    lines += [f"    | {line}" for line in shown]
    lines.append(f"    full log: {log or '(none: the run stopped before its log started)'}")
    if printed:
        lines.append(f"    also: {Path(run.output_dir) / CONSOLE_FILE}")
    console.line("\n".join(lines))
    return Outcome(run, "failed", seconds=seconds, detail=detail, log=str(log or ""))


def execute_job(job, settings, console, slot=0, gpu=None, stop=None, active=None):
    """Run a job's runs in order, in one worker process; an evaluation whose training failed
    is `blocked`."""
    tag = "" if console.slots == 1 else f"[GPU {gpu}] " if gpu is not None else f"[job slot {slot + 1}] "
    worker = Worker(settings, gpu, active)
    try:
        return _execute_runs(job, settings, console, slot, worker, stop, tag)
    finally:
        worker.close()


def _execute_runs(job, settings, console, slot, worker, stop, tag):
    outcomes, failed_training = [], {}  # training folder -> its outcome's status
    for run in job.runs:
        if stop is not None and stop.is_set():
            break
        if run.train_dir and run.train_dir in failed_training:
            why = {"failed": "failed", "conflict": "belongs to another config",
                   "busy": "is busy"}[failed_training[run.train_dir]]
            console.line(f"{console.next_index()} {tag}{run.label}: skipped, its training {why}")
            outcomes.append(Outcome(run, "blocked", detail=f"its training run {why}"))
            continue
        outcome = execute_run(run, settings, console, slot, worker, stop, tag)
        outcomes.append(outcome)
        if outcome.status in ("failed", "conflict", "busy") and run.trains:
            failed_training[run.output_dir] = outcome.status
    return outcomes


# -- many jobs --------------------------------------------------------------------------------
def run_local(jobs, settings, gpus=None, console=None, out=None):
    """Run `jobs` here: in order, or with `gpus` one job per GPU at a time from a queue
    (each job's processes see only their GPU, CUDA_VISIBLE_DEVICES; a None is a slot on
    the CPU). A KeyboardInterrupt
    stops every run; the same command resumes. Returns the outcomes."""
    gpus = list(gpus or [])
    total = sum(len(j.runs) for j in jobs)
    console = console or Console(total, slots=max(1, len(gpus)), progress=settings.progress,
                                 out=out)
    stop, active, outcomes, pool = threading.Event(), set(), [], None
    try:
        if len(gpus) <= 1:
            for job in jobs:
                outcomes += execute_job(job, settings, console, 0, gpus[0] if gpus else None,
                                        stop, active)
            return outcomes
        free = queue.Queue()
        for slot, gpu in enumerate(gpus):
            free.put((slot, gpu))

        def work(job):
            slot, gpu = free.get()
            try:
                return execute_job(job, settings, console, slot, gpu, stop, active)
            finally:
                free.put((slot, gpu))

        pool = ThreadPoolExecutor(max_workers=len(gpus), thread_name_prefix="gpu")
        futures = [pool.submit(work, job) for job in jobs]
        for future in futures:
            outcomes += future.result()
        return outcomes
    except KeyboardInterrupt:
        stop.set()
        for proc in list(active):
            proc.terminate()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        console.close()


def summary(outcomes):
    """Lines that sum up the outcomes; the failures with their logs."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed",
                                                               "blocked", "conflict", "busy")}
    first = (f"{len(outcomes)} runs: {counts['done']} done, {counts['skipped']} skipped "
             f"(already finished), {counts['failed']} failed, {counts['blocked']} not run "
             "(their training failed or was not run)")
    if counts["conflict"]:
        first += f", {counts['conflict']} in a folder of another config (conflict)"
    if counts["busy"]:
        first += f", {counts['busy']} busy (another process is writing them)"
    lines = [first]
    for o in outcomes:
        if o.status in PROBLEMS:
            where = o.run.output_dir if o.status in ("conflict", "busy") else \
                o.log or o.run.output_dir
            lines.append(f"  {o.status.upper()}: {o.run.label} ({o.detail}) {where}")
    if counts["conflict"]:
        lines.append("  a conflict's folder holds a run of another config: write to another "
                     "OUTPUT, or pass --move-aside to rename such folders to "
                     "<folder>.moved-<UTC time> and run afresh.")
    return lines


PROBLEMS = ("failed", "blocked", "conflict", "busy")  # outcomes that make a command fail
