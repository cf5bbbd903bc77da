"""`--slurm` against a real Slurm: a single-node cluster started on this machine for these
tests (tests/slurm_cluster.py; needs root and Debian's slurmctld, slurmd, slurm-client and
munge, else the tests are skipped with the reason), without accounting, as many small
clusters run. The demo is submitted as a user would and waited for, its table checked; a
task requeued by Slurm and then by submitit resumes from its checkpoints and ends bit for bit
as a run never stopped; a cancelled task is reported, not waited for forever; polling is
quiet; sbatch's refusal is one line."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sar_prompt.orchestration.slurm import UNFINISHED
from slurm_cluster import SlurmCluster, unavailable

pytest.importorskip("submitit")
if unavailable():
    pytest.skip(f"no Slurm cluster here: {unavailable()}", allow_module_level=True)

# Time-outs: these tests take 1.5 to 2.5 minutes on 2 cores; whatever hangs fails them
# instead, each command after at most COMMAND_TIMEOUT_S and the whole file after BUDGET_S.
COMMAND_TIMEOUT_S = 300
BUDGET_S = 600
_deadline = time.monotonic() + BUDGET_S  # set again when the cluster starts


def left(cap=COMMAND_TIMEOUT_S):
    """Seconds a wait may take: `cap`, or what is left of the file's budget if less."""
    return max(1.0, min(cap, _deadline - time.monotonic()))


EPOCHS = 10  # the requeue test's training: long enough to be stopped twice in the middle
DEMO_RUN = Path("base2new") / "train_base" / "demo" / "shots_16" / "CoOpSAR"


@pytest.fixture(scope="module")
def cluster():
    global _deadline
    _deadline = time.monotonic() + BUDGET_S
    with SlurmCluster() as running:
        yield running


def sar_prompt(*args):
    return [sys.executable, "-m", "sar_prompt", *args]


def demo_run(tmp_path, *extra, data=None, trailing=()):
    """`sar-prompt run base2new CoOpSAR --datasets demo ... --slurm --wait`, one CPU per task."""
    return sar_prompt("run", "base2new", "CoOpSAR", *trailing, "--datasets", "demo",
                      "--data", str(data or tmp_path / "data"), "--output", str(tmp_path / "out"),
                      "--slurm", "--wait", "--gpus-per-job", "0", "--cpus-per-job", "1",
                      "--time", "30", *extra)


def run(cluster, argv, cwd):
    return subprocess.run(argv, env=cluster.environ(), cwd=cwd, capture_output=True, text=True,
                          timeout=left())


def assert_quiet(text):
    """Nothing about polling (no sacct, no warnings), no traceback."""
    for word in ("sacct", "accounting", "warning", "traceback"):
        assert word not in text.lower(), text


def test_the_demo_through_slurm_ends_with_its_table(cluster, tmp_path):
    result = run(cluster, demo_run(tmp_path, "--seeds", "1", "2"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_quiet(result.stdout + result.stderr)
    job = re.search(r"submitted 2 job\(s\) to slurm \((\d+)_0 \.\.\. \1_1\)", result.stdout)
    assert job, result.stdout
    assert "4 runs: 4 done" in result.stdout and "| CoOpSAR |" in result.stdout
    root = tmp_path / "out" / "base2new"
    # every run ran as a task of that Slurm job array, on this cluster's node
    for task in (0, 1):
        log = (root / "slurm" / f"{job[1]}_{task}_0_log.out").read_text()
        assert f"JobEnvironment(job_id={job[1]}_{task}, hostname={cluster.node}" in log
        assert f"[2/2] demo CoOpSAR seed {task + 1} new: acc" in log
    table = json.loads((root / "tables" / "base2new_CoOpSAR.json").read_text())
    entries = [e for e in table["entries"] if e["metric"] in ("base", "new")]
    for entry in entries:  # the table holds the runs' own results
        folder = "train_base" if entry["metric"] == "base" else "test_new"
        for seed, value in entry["values"].items():
            result_file = root / folder / "demo" / "shots_16" / "CoOpSAR" / "demo" / \
                f"seed{seed}" / "results.json"
            assert value == json.loads(result_file.read_text())["accuracy"]
    assert sorted((e["metric"], e["n"]) for e in entries) == [("base", 2), ("new", 2)]


def wait_for(what, check, timeout=COMMAND_TIMEOUT_S, proc=None, explain=None):
    """`check()`'s value once true; fails after `timeout` s, or once `proc` has ended, with
    `explain()` (what it knows of why) in the message."""
    timeout = left(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            failure = f"the command ended before {what}"
        elif time.monotonic() > deadline:
            failure = f"no {what} after {timeout:.0f} s"
        else:
            time.sleep(0.1)
            continue
        raise AssertionError(failure + (f"\n{explain()}" if explain else ""))


def saved_epoch(run_dir):
    pointer = run_dir / "prompt_learner" / "checkpoint"
    try:
        return int(pointer.read_text().strip().rsplit("-", 1)[1])
    except (OSError, IndexError, ValueError):
        return 0


# Held until `scontrol release`: Slurm's requeue hold (Reason=job_requeued_in_held_state), a
# hold after a failed launch (JobHeldAdmin) or by a user; Priority=0 in all of them
HELD_STATES = {"REQUEUE_HOLD", "SPECIAL_EXIT", "RESV_DEL_HOLD"}
HELD_REASONS = {"JobHeldAdmin", "JobHeldUser", "job_requeued_in_held_state"}


def restarted(cluster, job_id, times):
    """Wait until the job has been requeued `times` times in all and runs again (or ran and
    ended). Whatever state Slurm leaves the requeued job in, this lets it go on:
    - COMPLETING (the stopped instance ending), REQUEUED, REQUEUE_FED: waited for;
    - PENDING, Reason=BeginTime: Slurm holds a requeued job back for the old credential's
      lifetime (AuthInfo cred_expire, 120 s); started at once instead, but only in a later
      second than the old instance's end, as slurmd refuses a launch whose credential is no
      newer (to the second) than the one it revoked ("Job credential revoked") and Slurm then
      fails the job for good (FAILED, ExitCode 1; it happened: a 240 s wait on a dead job);
    - held (REQUEUE_HOLD, JobHeldAdmin, ...): released;
    - the node drained or down (e.g. "Kill task failed"): resumed.
    Not stopped by the command ending: the restarted task may end it before this looks again
    (the job then COMPLETING, as the stopped instance right after a requeue). A failure says
    every state the job went through, and the job, node and daemons' state."""
    start = time.monotonic()
    seen, done = [], []  # (seconds, job state) as they change; what was done to the job
    pending_since = None  # wall clock: when the stopped instance was seen gone
    last_nudge = 0.0

    def act(*argv, note=""):
        nonlocal last_nudge
        last_nudge = time.monotonic()
        done.append(f"{time.monotonic() - start:.1f}s: {' '.join(argv[1:])}{note}")
        cluster.run(*argv, check=False)

    def running_again():
        nonlocal pending_since
        job = cluster.job(job_id)
        state, reason = job.get("JobState"), job.get("Reason")
        now = (job.get("Restarts"), state, reason)
        if not seen or seen[-1][1] != now:
            seen.append((time.monotonic() - start, now))
        if int(job.get("Restarts", 0)) < times:
            return False  # Slurm has not requeued it yet
        if state in ("RUNNING", "COMPLETED"):
            return True
        # ended for good (COMPLETED is not: the restarted task may end before this looks)
        if state not in UNFINISHED:
            raise AssertionError(f"job {job_id} {state} instead of running again after "
                                 f"requeue {times}\n{explain()}")
        if state == "PENDING" and pending_since is None:
            pending_since = time.time()
        if time.monotonic() - last_nudge < 1:
            return False  # give each nudge time to act
        if state in HELD_STATES or reason in HELD_REASONS or job.get("Priority") == "0":
            act("scontrol", "release", job_id)
            return False
        if state != "PENDING":
            return False  # COMPLETING, REQUEUED, ...: Slurm moves on by itself
        node_state, node_reason = cluster.node_state()  # a drained node keeps it pending
        if node_state.startswith(("drained", "down")) and not node_state.endswith("*"):
            act("scontrol", "update", f"NodeName={cluster.node}", "State=RESUME",
                note=f" (was {node_state}: {node_reason})")
        elif reason == "BeginTime" and int(time.time()) > int(pending_since):
            act("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        return False

    def explain():
        states = ", ".join(f"{t:.1f}s: Restarts={r} {s} ({why})" for t, (r, s, why) in seen)
        return (f"the job went {states}\n"
                f"done to it: {'; '.join(done) or 'nothing'}\n{cluster.describe(job_id)}")

    wait_for(f"job {job_id} running again after requeue {times}", running_again, timeout=240,
             explain=explain)


def test_a_task_requeued_by_slurm_and_by_submitit_resumes_bit_exact(cluster, tmp_path):
    """`scontrol requeue` (Slurm stops the task with SIGTERM, as on preemption), then SIGUSR2
    (submitit's time-limit signal: it requeues the task itself): the training resumes from
    its last checkpoint each time and ends equal to the same run done without a stop."""
    trailing = ("OPTIM.MAX_EPOCH", str(EPOCHS))
    data, whole = tmp_path / "data", tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "sar_prompt.orchestration.demo", "prepare", "--data",
                    str(data)], check=True, capture_output=True, timeout=left())
    reference = subprocess.Popen(  # the same runs, here, never stopped (alongside)
        sar_prompt("run", "base2new", "CoOpSAR", *trailing, "--datasets", "demo", "--seeds",
                   "1", "--data", str(data), "--output", str(whole / "out")),
        env=cluster.environ(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    out_file, err_file = tmp_path / "stopped.out", tmp_path / "stopped.err"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(demo_run(tmp_path / "stopped", "--seeds", "1", data=data,
                                         trailing=trailing),
                                env=cluster.environ(), cwd=tmp_path, stdout=out, stderr=err)
    try:
        job_id = wait_for("the submission", lambda: re.findall(
            r"submitted 1 job\(s\) to slurm \((\d+)\)", out_file.read_text()), proc=proc)[0]
        run_dir = wait_for("the training folder", lambda: next(
            (tmp_path / "stopped" / "out" / DEMO_RUN).glob("*/seed1"), None), proc=proc)
        log = tmp_path / "stopped" / "out" / "base2new" / "slurm" / f"{job_id}_0_log.out"

        first = wait_for("a first checkpoint", lambda: saved_epoch(run_dir), proc=proc)
        cluster.run("scontrol", "requeue", job_id)
        restarted(cluster, job_id, 1)
        wait_for("the resumed training", lambda: "resuming training" in log.read_text(),
                 proc=proc)
        resumed = saved_epoch(run_dir)
        wait_for("a checkpoint of the resumed training",
                 lambda: saved_epoch(run_dir) > resumed, proc=proc)
        assert saved_epoch(run_dir) < EPOCHS, "the training ended before it was stopped again"
        cluster.run("scancel", "--signal=USR2", job_id)
        restarted(cluster, job_id, 2)
        proc.wait(left())
        reference_out, _ = reference.communicate(timeout=left())
    finally:
        for p in (proc, reference):
            if p.poll() is None:
                p.kill()
    stdout, stderr = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 0, stdout + stderr
    assert reference.returncode == 0, reference_out
    assert_quiet(stdout + stderr)
    assert "2 runs: 2 done" in stdout and "| CoOpSAR |" in stdout

    # Restarts=2 (waited for above): Slurm's requeue, then submitit's, which SIGUSR2 makes
    # (without its handler the task would have died of it). What a task prints as it is
    # stopped may be lost with the step; what it prints on starting is not.
    assert int(cluster.job(job_id)["Restarts"]) == 2
    log = log.read_text()
    assert log.count("resuming training from epoch") == 2 and "FAILED" not in log
    resumes = json.loads((run_dir / "resumes.json").read_text())
    assert len(resumes) == 2 and all(r["exact"] for r in resumes)
    assert resumes[0]["epoch"] >= first and resumes[1]["epoch"] > resumes[0]["epoch"]

    whole_dir = next((whole / "out" / DEMO_RUN).glob("*/seed1"))
    name = f"model.pth.tar-{EPOCHS}"
    stopped_ctx, whole_ctx = (torch.load(d / "prompt_learner" / name, weights_only=True)
                              ["state_dict"]["ctx"] for d in (run_dir, whole_dir))
    assert torch.equal(stopped_ctx, whole_ctx)
    for folder in ("train_base", "test_new"):
        accuracies = [json.loads(next((root / folder).glob("demo/shots_16/CoOpSAR/*/seed1/"
                                                           "results.json")).read_text())
                      ["accuracy"] for root in (tmp_path / "stopped" / "out" / "base2new",
                                                whole / "out" / "base2new")]
        assert accuracies[0] == accuracies[1]


def test_a_cancelled_task_is_reported_not_waited_for(cluster, tmp_path):
    """Without accounting submitit's sacct poll only fails, and a task that ends without a
    result (here cancelled) was never seen to end; squeue sees it."""
    out_file = tmp_path / "run.out"
    with open(out_file, "w") as out:
        proc = subprocess.Popen(demo_run(tmp_path, "--seeds", "1",
                                         trailing=("OPTIM.MAX_EPOCH", "200")),
                                env=cluster.environ(), cwd=tmp_path, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        job_id = wait_for("the submission", lambda: re.findall(
            r"submitted 1 job\(s\) to slurm \((\d+)\)", out_file.read_text()), proc=proc)[0]
        wait_for("the task running", lambda: cluster.job(job_id).get("JobState") == "RUNNING",
                 proc=proc)
        cluster.run("scancel", job_id)
        proc.wait(left())
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out_file.read_text()
    assert proc.returncode == 1, text
    assert f"CRASHED: demo CoOpSAR seed 1: ended without a result (job {job_id}: CANCELLED)" \
        in text, text
    assert_quiet(text)


def test_sbatchs_refusal_is_one_line(cluster, tmp_path):
    before = cluster.jobs()
    result = run(cluster, demo_run(tmp_path, "--seeds", "1", "--partition", "nope"), tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: sbatch refused the submission: invalid partition specified: nope; Batch job "
        "submission failed: Invalid partition name specified. Nothing was submitted; check the "
        "Slurm options (--partition, --account, --qos, --constraint, --time, --gpus-per-job, "
        "--cpus-per-job, --mem-gb) against what sinfo shows."]
    assert cluster.jobs() == before  # nothing was submitted
