"""The same job list on a Slurm cluster, submitted with submitit (pip install 'sar-prompt[slurm]').

Every job becomes one task of a Slurm job array (one GPU each), running the job's runs in
order with the local runner's code, so skipping, resuming and failure records are the same.
A task that hits its time limit or is preempted is requeued by submitit (the job is
Checkpointable) and resumes where its runs stopped. submitit's "local" and "debug" executors
run the same submission on this machine, without a cluster.
"""
from dataclasses import dataclass

from sar_prompt.errors import ConfigError
from sar_prompt.orchestration.runner import Console, execute_job

CLUSTERS = ("slurm", "local", "debug")


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
except ImportError:
    Checkpointable = object


class JobTask(Checkpointable):
    """What each Slurm task runs: the job's runs, in order, quietly. Checkpointable:
    submitit requeues it as is on timeout or preemption, and finished runs are skipped."""

    def __call__(self, job, settings):
        console = Console(len(job.runs), progress=False)
        return execute_job(job, settings, console)


def executor(folder, options):
    submitit = _submitit()
    if options.cluster not in CLUSTERS:
        raise ConfigError(f"unknown cluster {options.cluster!r}; use one of {', '.join(CLUSTERS)}.")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    ex.update_parameters(**options.parameters())
    return ex


def submit(jobs, settings, folder, options):
    """Submit `jobs` (one array task each); the submitit Job objects."""
    ex = executor(folder, options)
    task = JobTask()
    with ex.batch():
        submitted = [ex.submit(task, job, settings) for job in jobs]
    return submitted


def wait(submitted, jobs):
    """Wait for every submitted job; (outcomes, [(job label, error, log path)] for tasks that
    crashed outright)."""
    outcomes, crashed = [], []
    for handle, job in zip(submitted, jobs):
        try:
            outcomes += handle.result()
        except Exception as exc:  # submitit raises its own types for failed tasks
            crashed.append((job.label, str(exc).strip().splitlines()[-1:] or [""],
                            getattr(getattr(handle, "paths", None), "stderr", None)))
    return outcomes, crashed
