"""scripts/base2new_all.sh end to end with the real train.py: two fixture datasets, two
trainers (CoOp and CoOpSAR), one seed, one epoch, two shots, two jobs at a time; quiet
output, logs and fingerprints in the run folders, the saved table and plot, and
`python -m sar_prompt.results --compare`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from fixtures import write_dataset
from sar_prompt.orchestration import runner
from sar_prompt.runs.protocols import Benchmark
from test_base2new_script import TINY_CONFIG

SCRIPT = REPO / "scripts" / "base2new_all.sh"
DATASETS = ("eurosat", "dtd")


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory, tiny_clip_path):
    """Both trainers run through base2new_all.sh; {trainer: CompletedProcess}, folders."""
    tmp = tmp_path_factory.mktemp("e2e")
    data, out = tmp / "data", tmp / "output"
    for key in DATASETS:
        write_dataset(key, data)
    config = tmp / "tiny.yaml"
    config.write_text(TINY_CONFIG.replace("MAX_EPOCH: 2", "MAX_EPOCH: 1"))
    env = dict(os.environ, PYTHON=sys.executable, DATA=str(data), OUTPUT=str(out),
               DATASETS=" ".join(DATASETS), SEEDS="1", SHOTS="2", CFG=str(config), JOBS="2",
               PROGRESS="1")
    procs = {}
    for trainer in ("CoOp", "CoOpSAR"):
        procs[trainer] = subprocess.run(
            ["bash", str(SCRIPT), trainer, "MODEL.BACKBONE.PATH", str(tiny_clip_path)],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    return procs, out, env, tiny_clip_path


def run_folder(out, phase, dataset, trainer):
    return out / "base2new" / phase / dataset / "shots_2" / trainer / "tiny" / "seed1"


def accuracy(folder):
    return json.loads((folder / "results.json").read_text())["accuracy"]


def test_quiet_runs_with_one_line_per_start_and_end(benchmark):
    procs, out, _, _ = benchmark
    for trainer, proc in procs.items():
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        lines = proc.stdout.splitlines()
        starts = [line for line in lines if "-> " in line]
        ends = [line for line in lines if ": acc " in line]
        assert len(starts) == len(ends) == 4
        assert "** Config **" not in proc.stdout and "epoch [" not in proc.stdout
        assert {"[job slot 1]", "[job slot 2]"} & {line.split("] ")[1] + "]" for line in starts}
        assert "4 runs: 4 done" in proc.stdout
        assert "epoch 1/1 loss" in proc.stderr  # the progress bar (PROGRESS=1 forces it)
        for dataset in DATASETS:
            log = run_folder(out, "train_base", dataset, trainer) / "log.txt"
            assert "** Config **" in log.read_text() and "epoch [1/1]" in log.read_text()


def test_each_trainers_table_and_plot_are_saved(benchmark):
    procs, out, _, _ = benchmark
    tables = out / "base2new" / "tables"
    for trainer, proc in procs.items():
        assert f"table and plot: {tables / f'base2new_{trainer}.md'}" in proc.stdout
        assert (tables / f"base2new_{trainer}.png").read_bytes()[:4] == b"\x89PNG"
        base = accuracy(run_folder(out, "train_base", "eurosat", trainer))
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {trainer} |"))
        assert f"| {base:.2f} ± 0.00 |" in row


def test_fingerprints_describe_each_run(benchmark):
    _, out, _, clip = benchmark
    prints = {t: json.loads((run_folder(out, "train_base", "dtd", t) / "fingerprint.json")
                            .read_text()) for t in ("CoOp", "CoOpSAR")}
    for fp in prints.values():
        assert fp["config"]["DATASET"]["NUM_SHOTS"] == 2 and fp["precision"] == "fp32"
        assert fp["device"]["type"] == "cpu" and fp["packages"]["torch"]
        assert fp["data"]["split_files"] == ["split_zhou_DescribableTextures.json"]
        assert len(fp["data"]["split_sha256"]) == 64 and fp["data"]["fewshot_file"]
        assert fp["clip_weights"]["file"] == str(clip)
    # the same few-shot sample for both trainers; SAR's novel-class file recorded
    assert prints["CoOp"]["data"]["fewshot_sha256"] == prints["CoOpSAR"]["data"]["fewshot_sha256"]
    assert prints["CoOp"]["novel_classes"] is None
    assert prints["CoOpSAR"]["novel_classes"]["file"].endswith("novel_classes/dtd.json")


def test_compare_and_rerun(benchmark, tmp_path):
    procs, out, env, clip = benchmark
    proc = subprocess.run([sys.executable, "-m", "sar_prompt.results", str(out / "base2new"),
                           "--compare", "CoOp", "CoOpSAR", "--seeds", "1", "--shots", "2",
                           "--save", str(tmp_path), "--format", "markdown", "--std"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): [c.strip().replace("**", "")  # bold: the best
                                         for c in line.strip().strip("|").split("|")]
            for line in proc.stdout.splitlines() if line.startswith("| ")}
    b0, n0 = (accuracy(run_folder(out, p, "dtd", "CoOp")) for p in ("train_base", "test_new"))
    b1, n1 = (accuracy(run_folder(out, p, "dtd", "CoOpSAR")) for p in ("train_base", "test_new"))
    hm = lambda b, n: 2 * b * n / (b + n) if b + n else 0.0  # noqa: E731
    assert rows["CoOp"][1:3] == [f"{b0:.2f} ± 0.00", f"{n0:.2f} ± 0.00"]  # DTD first
    assert rows["CoOpSAR"][1:3] == [f"{b1:.2f} ± 0.00", f"{n1:.2f} ± 0.00"]
    assert rows["*Δ CoOpSAR − CoOp*"][1:4] == [f"{b1 - b0:+.2f}", f"{n1 - n0:+.2f}",
                                               f"{hm(b1, n1) - hm(b0, n0):+.2f}"]
    assert "fingerprint" not in proc.stderr  # same code, data and settings: nothing to flag
    assert (tmp_path / "base2new_CoOp_vs_CoOpSAR.png").is_file()
    again = subprocess.run(["bash", str(SCRIPT), "CoOp", "MODEL.BACKBONE.PATH", str(clip)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 4


def _evaluation_lines(folder):
    log = (folder / "log.txt").read_text()
    return [line for line in log.splitlines() if line.startswith(("* accuracy", "* macro_f1"))]


def test_a_jobs_runs_in_one_process_score_as_in_processes_of_their_own(benchmark, tmp_path):
    """The runner runs a seed's training and its evaluation in one worker process: the same
    two runs as `python -m sar_prompt.train` processes of their own give the same numbers
    (nothing of the training run leaks into the evaluation)."""
    _, out, env, clip = benchmark
    solo = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("eurosat",), seeds=(1,),
                     shots=(2,), config=env["CFG"], data=env["DATA"], output=str(tmp_path),
                     opts=("MODEL.BACKBONE.PATH", str(clip)))
    train, new = solo.jobs()[0].runs
    quiet = {k: v for k, v in env.items() if k != "PROGRESS"}
    for run_, epoch in ((train, None), (new, 1)):
        proc = subprocess.run(runner.Settings().command(run_, epoch), env=quiet,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for phase, run_ in (("train_base", train), ("test_new", new)):
        alone, shared = Path(run_.output_dir), run_folder(out, phase, "eurosat", "CoOpSAR")
        assert accuracy(alone) == accuracy(shared)
        assert _evaluation_lines(alone) == _evaluation_lines(shared) != []
