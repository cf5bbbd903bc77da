"""The same job list on a Slurm cluster, submitted with submitit (pip install 'sar-prompt[slurm]').

Every job becomes one task of a Slurm job array (one GPU each), running the job's runs in
order with the local runner's code, so skipping, resuming and failure records are the same.
A task stopped from outside resumes where its runs stopped when it runs again: submitit
requeues it on its time limit (SIGUSR2, the job is Checkpointable), and Slurm on preemption,
`scontrol requeue` or a node failure (SIGTERM: the task then ends without a result, and
without recording its interrupted run as failed). submitit's "local" and "debug" executors run
the same submission on this machine, without a cluster.

Waiting: a finished task is seen by its result file; a task that ended without one (killed,
cancelled) by the job's state. submitit asks sacct for states, which answers only where Slurm
keeps accounting (slurmdbd); without it, every poll failed with warnings and such a task was
never seen to end. `QueueWatcher` asks squeue instead when accounting is off.
"""
import contextlib
import io
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.orchestration.runner import Console, execute_job

CLUSTERS = ("slurm", "local", "debug")
POLL_S = 60  # the longest wait between two state queries (submitit's own: 600 s)
# Job states after which a job may still run (submitit's list, and the states squeue adds:
# CONFIGURING while cloud nodes boot, SUSPENDED, held after a requeue, ...).
UNFINISHED = frozenset({
    "READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED",
    "CONFIGURING", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED",
    "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "RESV_DEL_HOLD"})
STOPPED_EXIT = 128 + signal.SIGTERM


class SubmissionError(SarPromptError):
    """sbatch refused the submission (its own message says why)."""


@dataclass(frozen=True)
class SlurmOptions:
    cluster: str = "slurm"
    time_min: int = 24 * 60
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: float = None
    partition: str = None
    account: str = None
    qos: str = None
    constraint: str = None
    array_parallelism: int = None
    name: str = "sar-prompt"

    def parameters(self):
        """submitit's parameters (generic ones, and slurm_* ones that only Slurm reads)."""
        params = {"timeout_min": self.time_min, "gpus_per_node": self.gpus_per_job,
                  "cpus_per_task": self.cpus_per_job, "tasks_per_node": 1, "nodes": 1,
                  "name": self.name}
        if self.cluster == "local":
            params.pop("cpus_per_task")  # the local executor runs on this machine's CPUs
        if self.mem_gb:
            params["mem_gb"] = float(self.mem_gb)
        for key in ("partition", "account", "qos", "constraint", "array_parallelism"):
            if getattr(self, key) is not None:
                params[f"slurm_{key}"] = getattr(self, key)
        return params


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("Slurm submission needs submitit: pip install 'sar-prompt[slurm]' "
                          "(or pip install submitit).") from None
    return submitit


try:  # submitit is optional; without it JobTask exists but cannot be submitted
    from submitit.helpers import Checkpointable
    from submitit.slurm.slurm import SlurmInfoWatcher
except ImportError:
    Checkpointable = SlurmInfoWatcher = object


class JobTask(Checkpointable):
    """What each Slurm task runs: the job's runs, in order, quietly. Checkpointable:
    submitit requeues it as is on its time limit, and finished runs are skipped. On SIGTERM
    (Slurm stops the task: preemption, requeue, cancel) the run in progress is stopped and
    the task exits without a result, so neither the run nor the job counts as failed."""

    def __call__(self, job, settings):
        console = Console(len(job.runs), progress=False)
        stop, active = threading.Event(), set()

        def stopped(signum, frame):
            stop.set()
            for proc in list(active):
                proc.terminate()

        try:
            previous = signal.signal(signal.SIGTERM, stopped)
        except ValueError:  # not the main thread (submitit's debug executor): nothing to catch
            previous = None
        try:
            outcomes = execute_job(job, settings, console, stop=stop, active=active)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if stop.is_set():
            print("stopped (SIGTERM): the run in progress is not recorded as failed; when "
                  "the task runs again, its runs resume from their last saved epoch.",
                  flush=True)
            sys.exit(STOPPED_EXIT)  # SystemExit: submitit writes no result for this try
        return outcomes


class QueueWatcher(SlurmInfoWatcher):
    """submitit's job-state poller, asking squeue when the cluster keeps no accounting (sacct
    then only fails): one quiet query per poll, finished jobs included while the controller
    holds them (MinJobAge); a job it no longer lists has ended ("ENDED"). With accounting,
    submitit's own sacct query. A query that fails for another reason is a one-line warning."""

    def __init__(self, delay_s=POLL_S):
        super().__init__(delay_s=delay_s)
        self._accounting = None  # unknown until scontrol answers

    def accounting(self):
        """Whether the cluster keeps accounting (sacct works); None when scontrol cannot say."""
        if self._accounting is None:
            try:
                out = subprocess.run(["scontrol", "show", "config"], capture_output=True,
                                     text=True, timeout=60)
            except (OSError, subprocess.SubprocessError):
                return None
            for line in out.stdout.splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "AccountingStorageType":
                    self._accounting = value.strip() not in ("accounting_storage/none", "")
        return self._accounting

    def is_done(self, job_id, mode="standard"):
        return self.get_state(job_id, mode=mode).upper() not in UNFINISHED

    def update(self):
        if self.accounting() is not False:
            return super().update()
        pending = self._registered - self._finished
        ids = sorted({job_id.split("_")[0] for job_id in pending})
        if not ids:
            return
        self._num_calls += 1
        info = self._query(ids)
        if info is not None:
            for job_id in pending:  # asked for, not listed: it ended and was forgotten
                info.setdefault(job_id, {"JobID": job_id, "State": "ENDED", "NodeList": ""})
            self._info_dict.update(info)
        self._last_status_check = time.time()
        for job_id in pending:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)

    def _query(self, ids):
        """{job id: {"JobID", "State", "NodeList"}} from squeue, or None when it failed."""
        command = ["squeue", "--noheader", "--states=all", "--array", "--format=%i|%T|%N",
                   f"--jobs={','.join(ids)}"]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            _warn(f"squeue failed ({exc}); asking again later")
            return None
        if out.returncode == 0:
            return self.read_info("JobID|State|NodeList\n" + out.stdout)
        if "Invalid job id" in out.stderr:  # none of them is known any more
            return {}
        _warn(f"squeue failed ({out.stderr.strip() or f'exit code {out.returncode}'}); "
              "asking again later")
        return None


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def executor(folder, options):
    submitit = _submitit()
    if options.cluster not in CLUSTERS:
        raise ConfigError(f"unknown cluster {options.cluster!r}; use one of {', '.join(CLUSTERS)}.")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    ex.update_parameters(**options.parameters())
    return ex


def sbatch_message(text):
    """sbatch's error lines as one line, without their `sbatch: error:` prefixes."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    lines = [line.split("error:", 1)[1].strip() if line.startswith("sbatch:") and
             "error:" in line else line for line in lines]
    return "; ".join(dict.fromkeys(lines)) or "no message"


def submit(jobs, settings, folder, options):
    """Submit `jobs` (one array task each); the submitit Job objects. sbatch's refusal is a
    SubmissionError carrying sbatch's own message."""
    _submitit()
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    ex = executor(folder, options)
    task = JobTask()
    said = io.StringIO()  # submitit prints sbatch's stderr itself: keep it for the message
    try:
        with contextlib.redirect_stderr(said), ex.batch():
            submitted = [ex.submit(task, job, settings) for job in jobs]
    except (FailedJobError, FailedSubmissionError) as exc:
        raise SubmissionError(
            f"sbatch refused the submission: {sbatch_message(exc)}. Nothing was submitted; "
            "check the Slurm options (--partition, --account, --qos, --constraint, --time, "
            "--gpus-per-job, --cpus-per-job, --mem-gb) against what sinfo shows.") from None
    except BaseException:
        sys.stderr.write(said.getvalue())
        raise
    sys.stderr.write(said.getvalue())
    if options.cluster == "slurm":
        watcher = QueueWatcher()
        for handle in submitted:
            handle.watcher = watcher  # this job's poller, not submitit's class-wide one
            watcher.register_job(handle.job_id)
    return submitted


def wait(submitted, jobs):
    """Wait for every submitted job; (outcomes, [(job label, error, log path)] for tasks that
    crashed outright: the exception's last line, or the job's state when it ended without a
    result, killed or cancelled)."""
    from submitit.core.utils import UncompletedJobError

    outcomes, crashed = [], []
    for handle, job in zip(submitted, jobs):
        log = getattr(getattr(handle, "paths", None), "stderr", None)
        try:
            outcomes += handle.result()
        except UncompletedJobError:
            state = handle.watcher.get_state(handle.job_id, mode="cache")
            crashed.append((job.label, [f"ended without a result (job {handle.job_id}: "
                                        f"{state})"], log))
        except Exception as exc:  # submitit raises its own types for failed tasks
            crashed.append((job.label, str(exc).strip().splitlines()[-1:] or [""], log))
    return outcomes, crashed
