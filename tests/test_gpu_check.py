"""The GPU check (benchmarks/gpu_check.sh), in its dry mode on the CPU: the same script a
GPU runs, every part of it, on the tiny CLIP with SAR_PROMPT_CPU_HALF=1. Its record holds
every method and SAR variant in fp32, fp16 and amp, an exact resume and the benchmark
sections; options it cannot honour stop it with exit 2."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import gpu_check  # noqa: E402
from benchmarks.build import METHODS  # noqa: E402


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """`bash benchmarks/gpu_check.sh --device cpu --quick`: (exit status, stdout, record)."""
    path = tmp_path_factory.mktemp("gpu_check") / "record.json"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("SAR_PROMPT_CPU_HALF", None)  # the script sets it for a CPU
    done = subprocess.run(["bash", str(REPO / "benchmarks/gpu_check.sh"), "--device", "cpu",
                           "--quick", "--json", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, json.loads(path.read_text(encoding="utf-8"))


def test_the_dry_run_passes_every_check_and_completes(dry_run):
    status, stdout, record = dry_run
    failed = [c for c in record["checks"] if not c["passed"]]
    assert status == 0 and not failed, failed
    assert record["schema"] == "sar-prompt/gpu-check" and record["complete"] and record["passed"]
    assert record["device"] == "cpu" and record["arch"] == "tiny"
    assert set(record["seconds"]) == {"precision", "resume", "benchmarks"}
    assert f"{len(record['checks'])} of {len(record['checks'])} checks passed" in stdout


def test_every_method_and_variant_runs_in_every_precision(dry_run):
    part = dry_run[2]["precision"]
    assert len(part["classes"]) == 4 and part["steps"] == 2
    precision = part["variants"]
    assert set(precision) == {n for m in METHODS for n in (m, m + "SAR")}
    for name, entry in precision.items():
        runs = entry["runs"]
        assert set(runs) == {"fp32", "fp16", "amp"}  # on a CPU, the CPU's fp32 is the device's
        assert {p: r["precision"] for p, r in runs.items()} == {p: p for p in runs}
        assert runs["fp16"]["clip_dtype"] == "float16" and runs["amp"]["clip_dtype"] == "float32"
        assert all(len(r["loss"]) == 2 for r in runs.values())
        assert set(entry["comparisons"]) == {"fp16 vs fp32, ulps", "amp vs fp32, ulps"}
        for value in entry["comparisons"].values():
            assert 0 <= value <= dry_run[2]["tolerance_ulps"]
        if name.endswith("SAR"):
            assert all(r["sar_dtypes"] == [["torch.float32"] * 3] for r in runs.values())
            assert all("sar" in s for r in runs.values() for s in r["steps"])
        assert runs["fp16"]["learnable_dtypes"]["ctx"] == "float16"


def test_the_resume_is_exact(dry_run):
    resume = dry_run[2]["resume"]["fp16"]
    assert resume["final_prompts_equal"] and resume["max_abs_difference"] == 0.0
    assert [r["epoch"] for r in resume["resumes"]] == [resume["resumed_at_epoch"]]
    assert all(r["exact"] for r in resume["resumes"])


def test_the_benchmark_sections_are_kept_whole(dry_run):
    bench = dry_run[2]["benchmarks"]
    assert bench["exit_status"] == 0 and bench["record"]["complete"]
    assert bench["record"]["schema"] == "sar-prompt/benchmark"
    assert set(bench["record"]["sections"]) == {"steps", "eval"}  # memory: GPU runs only
    assert bench["record"]["sections"]["steps"]["methods"]["CoOp"]["precision"] == "fp16"
    assert "## steps" in bench["tables"]


def test_cuda_without_a_gpu_and_a_bad_record_path_exit_2(tmp_path, capsys):
    if not torch.cuda.is_available():
        assert gpu_check.main(["--device", "cuda", "--json", str(tmp_path / "r.json")]) == 2
        assert "--device cpu --quick" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["--device", "cpu", "--quick", "--parts", "resume", "--json",
            str(blocker / "record.json")]
    assert gpu_check.main(argv) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--steps", "0"])
    assert exc.value.code == 2


def test_the_cpu_half_switch_is_left_as_it_was(tmp_path, monkeypatch):
    monkeypatch.delenv("SAR_PROMPT_CPU_HALF", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    gpu_check.main(["--device", "cpu", "--quick", "--json", str(blocker / "record.json")])
    assert "SAR_PROMPT_CPU_HALF" not in os.environ
