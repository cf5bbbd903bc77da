"""The Slurm submission's own logic, without a cluster: sbatch's refusal as one line, the job
poller (squeue when the cluster keeps no accounting, sacct when it does) against stand-in
Slurm commands, and a task stopped by SIGTERM ending without a result or a failure record.
tests/test_slurm_real.py runs the same against a real Slurm."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO
from sar_prompt.orchestration import bench

submitit = pytest.importorskip("submitit")

from sar_prompt.orchestration.slurm import QueueWatcher, sbatch_message  # noqa: E402

TESTS = Path(__file__).resolve().parent
STUB = TESTS / "stub_train.py"
CONFIG = REPO / "configs" / "trainers" / "demo.yaml"

REFUSAL = ("sbatch: error: invalid partition specified: nope\n"
           "sbatch: error: Batch job submission failed: Invalid partition name specified\n")


def fake_command(folder, name, stdout="", stderr="", code=0):
    """An executable `name` in `folder` that records its arguments in calls.log and answers
    with `stdout`, `stderr` and exit code `code`."""
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.out").write_text(stdout)
    (folder / f"{name}.err").write_text(stderr)
    path = folder / name
    path.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "{name} $*" >> "{folder}/calls.log"
        cat "{folder}/{name}.out"
        cat "{folder}/{name}.err" >&2
        exit {code}
        """))
    path.chmod(0o755)
    return path


def calls(folder):
    log = folder / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A folder of stand-in Slurm commands, first on PATH; accounting off."""
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "scontrol", "AccountingStorageType   = accounting_storage/none\n")
    fake_command(bin_dir, "sacct", "JobID|State|NodeList\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def test_sbatchs_error_lines_become_one_line():
    assert sbatch_message(REFUSAL) == ("invalid partition specified: nope; Batch job "
                                       "submission failed: Invalid partition name specified")
    assert sbatch_message("") == "no message"


def test_a_refused_submission_is_one_line_with_sbatchs_message(fake_slurm, tmp_path, capsys):
    fake_command(fake_slurm, "sbatch", stderr=REFUSAL, code=1)
    code = bench.main(["base2new", "CoOpSAR", "--datasets", "demo", "--seeds", "1", "--slurm",
                       "--partition", "nope", "--data", str(tmp_path / "data"),
                       "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [err.strip()]  # one line, no traceback
    assert err.startswith("error: sbatch refused the submission: invalid partition specified: "
                          "nope; Batch job submission failed: Invalid partition name specified.")
    assert "--partition" in err and "Traceback" not in err
    assert [c.split()[0] for c in calls(fake_slurm)] == ["sbatch"]


def watcher_after(fake_slurm, squeue_out="", squeue_err="", code=0, jobs=("7_0", "7_1", "8")):
    fake_command(fake_slurm, "squeue", squeue_out, squeue_err, code)
    watcher = QueueWatcher()
    for job in jobs:
        watcher.register_job(job)
    watcher.update()
    return watcher


def test_without_accounting_the_poller_asks_squeue_once_and_quietly(fake_slurm, capsys):
    watcher = watcher_after(fake_slurm, "7_0|RUNNING|vm\n7_1|COMPLETED|vm\n")
    made = calls(fake_slurm)
    assert made[0] == "scontrol show config" and len(made) == 2  # then squeue, no sacct
    assert made[1].startswith("squeue --noheader --states=all --array") and \
        made[1].endswith("--jobs=7,8")
    state = {job: watcher.get_state(job, mode="cache") for job in ("7_0", "7_1", "8")}
    # 8 is no longer listed: it ended long enough ago for the controller to forget it
    assert state == {"7_0": "RUNNING", "7_1": "COMPLETED", "8": "ENDED"}
    assert not watcher.is_done("7_0", mode="cache") and watcher.is_done("8", mode="cache")
    assert capsys.readouterr() == ("", "")
    watcher.update()  # the finished ones are not asked for again; accounting is known
    assert calls(fake_slurm)[2:] == ["squeue --noheader --states=all --array "
                                     "--format=%i|%T|%N --jobs=7"]


def test_states_in_which_a_job_may_still_run_are_not_done(fake_slurm):
    watcher = watcher_after(fake_slurm, "7_0|CONFIGURING|vm\n7_1|SUSPENDED|vm\n"
                            "8|REQUEUE_HOLD|\n")
    assert not any(watcher.is_done(j, mode="cache") for j in ("7_0", "7_1", "8"))
    for state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"):
        fake_command(fake_slurm, "squeue", f"8|{state}|vm\n")
        watcher = QueueWatcher()
        watcher.register_job("8")
        watcher.update()
        assert watcher.is_done("8", mode="cache"), state


def test_pending_array_ranges_are_read_per_task(fake_slurm):
    watcher = watcher_after(fake_slurm, "7_[0-1]|PENDING|\n", jobs=("7_0", "7_1"))
    assert [watcher.get_state(j, mode="cache") for j in ("7_0", "7_1")] == ["PENDING"] * 2


def test_jobs_squeue_no_longer_knows_have_ended(fake_slurm, capsys):
    watcher = watcher_after(fake_slurm, squeue_err="slurm_load_jobs error: Invalid job id "
                            "specified\n", code=1)
    assert {watcher.get_state(j, mode="cache") for j in ("7_0", "7_1", "8")} == {"ENDED"}
    assert capsys.readouterr().err == ""


def test_a_failing_squeue_is_one_warning_and_changes_nothing(fake_slurm, capsys):
    watcher = watcher_after(fake_slurm, squeue_err="squeue: error: Unable to contact slurm "
                            "controller (connect failure)\n", code=1)
    assert {watcher.get_state(j, mode="cache") for j in ("7_0", "7_1", "8")} == {"UNKNOWN"}
    err = capsys.readouterr().err
    assert err == ("warning: squeue failed (squeue: error: Unable to contact slurm controller "
                   "(connect failure)); asking again later\n")


def test_with_accounting_the_poller_is_submitits_sacct(fake_slurm):
    fake_command(fake_slurm, "scontrol", "AccountingStorageType   = accounting_storage/slurmdbd\n")
    fake_command(fake_slurm, "sacct", "JobID|State|NodeList\n8|COMPLETED|vm\n")
    watcher = watcher_after(fake_slurm, jobs=("8",))
    assert [c.split()[0] for c in calls(fake_slurm)] == ["scontrol", "sacct"]
    assert watcher.get_state("8", mode="cache") == "COMPLETED"


TASK = """
import sys
sys.path.insert(0, {tests!r})
from sar_prompt.orchestration.runner import Settings
from sar_prompt.orchestration.slurm import JobTask
from sar_prompt.runs.protocols import Benchmark

bench = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                  config={config!r}, data={data!r}, output={output!r})
outcomes = JobTask()(bench.jobs()[0], Settings(train={stub!r}, progress=False))
print("outcomes:", [o.status for o in outcomes])
"""


def test_a_task_slurm_stops_ends_without_result_or_failure_and_resumes(tmp_path):
    """Slurm stops a task (preemption, requeue, cancel) with SIGTERM to all its processes:
    the run in progress is not recorded as failed, the task exits 143 without returning
    (submitit then writes no result), and the task's next try resumes."""
    script = TASK.format(tests=str(TESTS), config=str(CONFIG), data=str(tmp_path / "data"),
                         output=str(tmp_path / "out"), stub=str(STUB))
    env = dict(os.environ, PYTHONPATH="", STUB_SLEEP="60")  # the stub needs no Dassl
    train = tmp_path / "out" / "base2new" / "train_base" / "eurosat" / "shots_16" / "CoOpSAR"
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(train.glob("*/seed1/prompt_learner/checkpoint")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # as Slurm does: every process of the task
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped (SIGTERM): the run in progress is not recorded as failed" in out
    assert "outcomes:" not in out and "FAILED" not in out
    run_dir = next(train.glob("*/seed1"))
    assert not (run_dir / "failed.json").exists() and not (run_dir / "results.json").exists()

    again = subprocess.run([sys.executable, "-c", script], env=dict(env, STUB_SLEEP="0"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "outcomes: ['done', 'done']" in again.stdout
    assert "resuming training from epoch 1" in again.stdout
    assert json.loads((run_dir / "results.json").read_text())["seed"] == 1
