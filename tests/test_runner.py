"""The runner and the benchmark command line, with tests/stub_train.py standing in for
train.py (the real one runs in test_bench_e2e.py): the GPU queue, skipping, resuming, broken
results, failures and their report, quiet output, the dry run, and the Slurm submission
through submitit's local executor."""
import io
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import REPO
from sar_prompt.orchestration import bench
from sar_prompt.orchestration import runner
from sar_prompt.runs.protocols import Benchmark
from sar_prompt.runs.result_file import read_run
from stub_train import accuracy

STUB = Path(__file__).resolve().parent / "stub_train.py"
CONFIG = REPO / "configs" / "trainers" / "demo.yaml"


def settings(**kw):
    return runner.Settings(python=sys.executable, train=str(STUB), progress=False, **kw)


def make_bench(tmp_path, protocol="base2new", datasets=("eurosat", "dtd"), seeds=(1, 2), **kw):
    return Benchmark(protocol=protocol, trainer="CoOpSAR", datasets=datasets, seeds=seeds,
                     config=str(CONFIG), data=str(tmp_path / "data"),
                     output=str(tmp_path / "out"), **kw)


def fingerprint_as(run_, folder=None):
    """The fingerprint.json a run of `run_`'s config writes (its identity part)."""
    from sar_prompt.runs import fingerprint
    from sar_prompt.runs import identity

    fp = identity.requested_from_argv(run_.argv())
    fp.update(schema=fingerprint.SCHEMA, version=fingerprint.VERSION)
    folder = Path(folder or run_.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / fingerprint.FILE).write_text(json.dumps(fp))
    return fp


def run(jobs, gpus=None, **kw):
    out = io.StringIO()
    outcomes = runner.run_local(jobs, settings(**kw), gpus, out=out)
    return outcomes, out.getvalue()


def test_jobs_run_base_then_new_and_report_one_line_per_start_and_end(tmp_path):
    b = make_bench(tmp_path)
    outcomes, text = run(b.jobs())
    assert [o.status for o in outcomes] == ["done"] * 8
    lines = text.splitlines()
    assert len(lines) == 16 and "** Config **" not in text  # quiet: Dassl's output in the logs
    assert lines[0].startswith("[1/8] eurosat CoOpSAR seed 1 base: training -> ")
    assert lines[2].startswith("[2/8] eurosat CoOpSAR seed 1 new: evaluating epoch 2 -> ")
    expected = accuracy("eurosat", 1, "new")
    assert lines[3] == f"[2/8] eurosat CoOpSAR seed 1 new: acc {expected:.2f}% in 0:00:00"
    new = b.jobs()[0].runs[1]
    result = json.loads((Path(new.output_dir) / "results.json").read_text())
    assert result["model_dir"] == b.jobs()[0].runs[0].output_dir and result["epoch"] == 2
    assert "** Config **" in (Path(new.output_dir) / "log.txt").read_text()


def test_a_jobs_runs_share_one_process_and_each_job_has_its_own(tmp_path, monkeypatch):
    """Start-up (torch, Dassl, CLIP) costs seconds: a seed's training and evaluation run in
    one worker process; a crashed worker is replaced for the job's next run."""
    jobs = make_bench(tmp_path).jobs()
    outcomes, _ = run(jobs)
    assert [o.status for o in outcomes] == ["done"] * 8
    pids = [[(Path(r.output_dir) / "stub_pid").read_text() for r in job.runs] for job in jobs]
    assert all(len(set(job)) == 1 for job in pids)
    assert len({job[0] for job in pids}) == len(jobs)
    assert str(os.getpid()) not in {job[0] for job in pids}



def test_a_worker_that_dies_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_DIE", "eurosat")
    jobs = make_bench(tmp_path, datasets=("eurosat",), seeds=(1,)).jobs()
    worker = runner.Worker(settings())
    try:
        first = worker.run(jobs[0].runs[0].argv(), {}, lambda *a: None)
        pid = worker.proc
        monkeypatch.delenv("STUB_DIE")
        second = worker.run(jobs[0].runs[0].argv(), {}, lambda *a: None)
    finally:
        worker.close()
    assert first == 9 and pid is None and second == 0


def test_finished_runs_are_skipped_broken_ones_redone_interrupted_ones_resumed(tmp_path):
    b = make_bench(tmp_path, datasets=("eurosat",), seeds=(1, 2, 3))
    jobs = b.jobs()
    run(jobs[:1])                                        # seed 1: finished
    broken = Path(jobs[1].runs[0].output_dir)            # seed 2: truncated results.json
    fingerprint_as(jobs[1].runs[0])
    (broken / "results.json").write_text('{"accuracy": 71.')
    assert read_run(broken).status == "broken"
    marker = Path(jobs[2].runs[0].output_dir) / "prompt_learner" / "checkpoint"
    fingerprint_as(jobs[2].runs[0])
    marker.parent.mkdir(parents=True)                    # seed 3: stopped after epoch 1
    marker.write_text("model.pth.tar-1\n")
    outcomes, text = run(jobs)
    assert [o.status for o in outcomes] == ["skipped", "skipped", "done", "done", "done", "done"]
    assert text.count("finished earlier") == 2
    assert "results.json is unreadable or truncated" in text and "running again" in text
    assert list(broken.glob("results.json.broken-*"))
    assert "seed 3 base: resuming training from epoch 1" in text
    assert "resuming from epoch 1" in (marker.parent.parent / "log.txt").read_text()


def test_a_failed_run_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setenv("STUB_FAIL", "eurosat")
    b = make_bench(tmp_path, seeds=(1,))
    outcomes, text = run(b.jobs())
    assert [o.status for o in outcomes] == ["failed", "blocked", "done", "done"]
    failed = Path(b.jobs()[0].runs[0].output_dir)
    assert "eurosat CoOpSAR seed 1 base: FAILED (exit code 1)" in text
    assert "    | RuntimeError: stub failure" in text                  # the log's tail
    assert f"full log: {failed / 'log.txt'}" in text
    assert "seed 1 new: skipped, its training failed" in text
    assert read_run(failed).status == "failed"
    lines = runner.summary(outcomes)
    assert lines[0].startswith("4 runs: 2 done, 0 skipped (already finished), 1 failed, 1 not")
    assert "FAILED: eurosat CoOpSAR seed 1 base (exit code 1)" in lines[1]


def test_fewshot_and_transfer_protocols_run_and_tabulate(tmp_path, monkeypatch):
    from sar_prompt.results import build_table

    fewshot = make_bench(tmp_path, "fewshot", datasets=("eurosat",), seeds=(1,), shots=(1, 4))
    outcomes, _ = run(fewshot.jobs())
    assert [(o.run.shots, o.run.phase, o.status) for o in outcomes] == [
        (1, "train_all", "done"), (4, "train_all", "done")]
    table = build_table(fewshot.root, "fewshot", ["CoOpSAR"], ["eurosat"], [1], [1, 4],
                        config="demo")
    assert table.complete and [e.shots for e in table.entries] == [1, 4]
    monkeypatch.setenv("STUB_FAIL", "dtd")  # the source fails: no target can be evaluated
    xd = make_bench(tmp_path, "xd", datasets=("eurosat", "ucf101"), seeds=(1,), source="dtd")
    outcomes, text = run(xd.jobs())
    assert [o.status for o in outcomes] == ["failed", "blocked", "blocked"]
    monkeypatch.delenv("STUB_FAIL")
    outcomes, _ = run(xd.jobs())
    source, *targets = xd.jobs()[0].runs
    assert [o.status for o in outcomes] == ["done"] * 3
    for t in targets:  # every target loads the source's final checkpoint
        result = json.loads((Path(t.output_dir) / "results.json").read_text())
        assert result["model_dir"] == source.output_dir and result["num_shots"] == -1
    table = build_table(xd.root, "xd", ["CoOpSAR"], ["eurosat", "ucf101"], [1], source="dtd",
                        config="demo")
    assert table.complete and table.datasets == ["dtd", "eurosat", "ucf101"]
    average = table.averages[0]
    assert average.mean == pytest.approx((accuracy("eurosat", 1, "all")
                                          + accuracy("ucf101", 1, "all")) / 2)


def test_gpu_queue_gives_each_job_its_own_gpu(tmp_path, monkeypatch):
    locks = tmp_path / "locks"
    locks.mkdir()
    monkeypatch.setenv("STUB_LOCKS", str(locks))
    monkeypatch.setenv("STUB_SLEEP", "0.05")
    b = make_bench(tmp_path, datasets=("eurosat", "dtd", "ucf101"))
    outcomes, text = run(b.jobs(), gpus=["0", "1"])
    assert all(o.status == "done" for o in outcomes) and len(outcomes) == 12
    folders = [Path(o.run.output_dir) for o in outcomes]
    used = {f: (f / "stub_gpu").read_text() for f in folders}
    assert set(used.values()) == {"0", "1"}
    assert not [f for f in folders if (f / "gpu_conflict").exists()]  # never two on one GPU
    for job in b.jobs():  # a job's runs stay on one GPU: the evaluation follows its training
        assert len({used[Path(r.output_dir)] for r in job.runs}) == 1
    assert "[GPU 0] " in text and "[GPU 1] " in text


def test_progress_events_draw_a_bar(tmp_path):
    b = make_bench(tmp_path, datasets=("eurosat",), seeds=(1,))
    bars = io.StringIO()
    console = runner.Console(2, progress=True, out=io.StringIO())
    console_bar = console._bar

    def bar_to_buffer(slot, run):  # the bar writes to a buffer instead of the terminal
        from tqdm import tqdm

        if slot not in console.bars:
            console.bars[slot] = tqdm(total=1, file=bars, leave=True, mininterval=0,
                                      bar_format="{desc} {percentage:3.0f}%")
        return console_bar(slot, run)

    console._bar = bar_to_buffer
    runner.run_local(b.jobs(), settings(), console=console)
    text = bars.getvalue()
    assert "eurosat CoOpSAR seed 1 base: epoch 2/2 loss 0.333 100%" in text
    assert "epoch 1/2 loss" in text


def test_bench_dry_run_prints_the_job_list(tmp_path, capsys):
    b = make_bench(tmp_path, seeds=(1,), opts=("TRAINER.SAR.WEIGHT", "2"))  # 2 is 2.0
    run(b.jobs()[:1])
    code = bench.main(["base2new", "CoOpSAR", "TRAINER.SAR.WEIGHT", "2.0", "--datasets",
                       "eurosat", "dtd", "--seeds", "1", "--config", str(CONFIG), "--data",
                       str(tmp_path / "data"), "--output", str(tmp_path / "out"),
                       "--gpus", "0,1", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "2 jobs, 4 runs, one job per GPU from the queue 0 1" in out
    lines = out.splitlines()
    # dtd still has runs to do, and there is no datasets folder: said, without stopping
    assert lines[2].startswith(f"data: the datasets folder {tmp_path / 'data'} (--data) does "
                               "not exist; make it: sar-prompt data download dtd --data ")
    del lines[2]
    assert lines[2] == "job 1/2: eurosat CoOpSAR seed 1"
    assert lines[5] == "job 2/2: dtd CoOpSAR seed 1"
    assert "finished (acc" in lines[3] and "--load-epoch 2" in lines[4]
    # an evaluation whose training has not run yet loads the config's last epoch
    assert "to run" in lines[6] and "--load-epoch 2" in lines[7]
    assert all("TRAINER.SAR.WEIGHT 2.0" in line for line in (lines[3], lines[7]))
    assert not (tmp_path / "out" / "base2new" / "train_base" / "dtd").exists()
    assert bench.main(["xd", "CoOp", "--seeds", "1", "--output", str(tmp_path / "out"),
                       "--slurm", "--partition", "gpu", "--time", "60", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 job, 11 runs" in out
    assert "'timeout_min': 60" in out and "'slurm_partition': 'gpu'" in out


def test_bench_errors_are_clear(tmp_path, capsys):
    assert bench.main(["base2new", "MyMethod", "--datasets", "eurosat", "--dry-run"]) == 2
    assert "unknown trainer 'MyMethod'" in capsys.readouterr().err
    assert bench.main(["fewshot", "CoOp", "MODEL.X", "--dry-run"]) == 2
    assert "KEY VALUE pairs" in capsys.readouterr().err


def test_slurm_submission_with_submitits_local_executor(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from sar_prompt.orchestration.slurm import SlurmOptions, submit, wait

    # the tasks run the runner and the stub only: spare them importing the Dassl test double
    monkeypatch.setenv("PYTHONPATH", "")

    b = make_bench(tmp_path, seeds=(1,))
    jobs = b.jobs()
    options = SlurmOptions(cluster="local", gpus_per_job=0, time_min=5, partition="gpu")
    assert options.parameters()["slurm_partition"] == "gpu"  # only Slurm reads it
    handles = submit(jobs, settings(), tmp_path / "slurm", options)
    assert all(isinstance(h, submitit.local.local.LocalJob) for h in handles)
    outcomes, crashed = wait(handles, jobs)
    assert not crashed and [o.status for o in outcomes] == ["done"] * 4
    for job in jobs:
        for r in job.runs:
            state = read_run(r.output_dir)
            assert state.accuracy == pytest.approx(accuracy(r.dataset, r.seed, r.subsample))
    logs = list((tmp_path / "slurm").glob("*_log.out"))
    assert logs and any("seed 1 new: acc" in p.read_text() for p in logs)


def test_bench_submission_through_submitits_debug_executor(tmp_path, capsys):
    pytest.importorskip("submitit")
    args = bench.parse(["base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds", "1",
                        "--config", str(CONFIG), "--data", str(tmp_path / "data"),
                        "--output", str(tmp_path / "out"), "--cluster", "debug"])
    b = bench.benchmark(args)
    assert bench.submit(b, b.jobs(), settings(), args) == 0
    out = capsys.readouterr().out
    assert "submitted 1 job(s) to debug" in out and "2 runs: 2 done" in out
    assert "| CoOpSAR |" in out and "EuroSAT" in out
    assert (b.root / "tables" / "base2new_CoOpSAR.png").is_file()
    assert bench.submit(b, b.jobs(), settings(), args) == 0  # all finished: nothing to submit
    assert "nothing to submit" in capsys.readouterr().out
