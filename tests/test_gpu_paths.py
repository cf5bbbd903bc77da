"""What only a GPU machine reaches, checked where a CPU can show it: CUDA random states
restored onto fewer GPUs than were saved, deterministic kernels on request, and `--gpus`
naming GPUs this machine does not have."""
import os
import random
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from sar_prompt.dassl_glue import rng


class FakeCuda:
    """torch.cuda's random-state calls on `count` pretend GPUs (what was set, per device)."""

    def __init__(self, count):
        self.count, self.set = count, {}

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all",
                            lambda: [torch.full((4,), d, dtype=torch.uint8)
                                     for d in range(self.count)])
        monkeypatch.setattr(torch.cuda, "set_rng_state",
                            lambda state, device: self._set(state, device))

    def _set(self, state, device):
        assert 0 <= device < self.count, f"cuda:{device} does not exist on {self.count} GPUs"
        self.set[device] = int(state[0])


def captured_on(count, monkeypatch):
    FakeCuda(count).install(monkeypatch)
    return rng.capture({"sar": torch.Generator().manual_seed(3)})


@pytest.mark.parametrize("saved, visible", [(2, 2), (4, 1), (1, 4)])
def test_cuda_states_restore_onto_the_gpus_visible_now(saved, visible, monkeypatch):
    state = captured_on(saved, monkeypatch)
    cuda = FakeCuda(visible)
    cuda.install(monkeypatch)
    problems = rng.restore(state, {"sar": torch.Generator()})
    assert cuda.set == {d: d for d in range(min(saved, visible))}  # device d gets state d
    if saved > visible:
        assert problems == [f"CUDA random states of {saved} GPUs saved, {visible} visible now "
                            f"(the first {visible} restored)"]
    else:
        assert problems == []


def test_cuda_states_saved_on_a_gpu_resume_on_a_cpu_with_a_note(monkeypatch):
    state = captured_on(2, monkeypatch)
    FakeCuda(0).install(monkeypatch)
    random.seed(0)
    problems = rng.restore(state, {"sar": torch.Generator(), "sampler": torch.Generator()})
    assert problems == ["CUDA random states of 2 GPU(s) saved, but no GPU is visible now",
                        "no state for sampler"]


def test_resume_records_a_gpu_mismatch_as_not_exact(build_trainer, tmp_path, monkeypatch,
                                                    capsys):
    out = tmp_path / "run"
    build_trainer("CoOp", "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True",
                  "OPTIM.MAX_EPOCH", "1", output=out).train()
    checkpoint = out / "prompt_learner" / "model.pth.tar-1"
    saved = torch.load(checkpoint, weights_only=True)
    saved["training_state"]["rng"]["cuda"] = [torch.zeros(4, dtype=torch.uint8)] * 2
    torch.save(saved, checkpoint)
    trainer = build_trainer("CoOp", "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True",
                            "OPTIM.MAX_EPOCH", "1", output=out)
    assert trainer.restore_training_state(saved["training_state"], checkpoint) is False
    assert "2 GPU(s) saved, but no GPU is visible now" in capsys.readouterr().out


def test_deterministic_mode_turns_off_autotuning_and_asks_for_deterministic_kernels(
        monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms",
                        lambda mode, warn_only=False: calls.append((mode, warn_only)))
    assert rng.configure_cuda(use_cuda=True, deterministic=False) == "autotuned"
    assert torch.backends.cudnn.benchmark and calls == []  # the references' setting
    assert rng.configure_cuda(use_cuda=True, deterministic=True) == "deterministic"
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert calls == [(True, True)] and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert rng.configure_cuda(use_cuda=False, deterministic=True) == "cpu"


def test_a_training_step_runs_under_torch_deterministic_algorithms(build_trainer, tmp_path):
    """Deterministic mode must not stop a run: every op of a SAR step has a deterministic
    implementation (CPU shows the ops torch would refuse; a GPU check covers CUDA's)."""
    trainer = build_trainer("CoCoOpSAR", "OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True",
                            "DATASET.NUM_SHOTS", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
                            output=tmp_path / "run")
    torch.use_deterministic_algorithms(True)
    try:
        batch = next(iter(trainer.train_loader_x))
        trainer.num_batches, trainer.batch_idx = 1, 0
        summary = trainer.forward_backward(batch)
    finally:
        torch.use_deterministic_algorithms(False)
    assert summary["sar"] >= 0


def bench(*args):
    env = dict(os.environ, PROGRESS="0", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "sar_prompt", "run", "base2new", "CoOp",
                           "--datasets", "caltech101", "--seeds", "1", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_gpus_that_this_machine_does_not_have_are_refused(tmp_path):
    (tmp_path / "data").mkdir()
    proc = bench("--gpus", "0,1", "--output", str(tmp_path / "out"),
                 "--data", str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "--gpus 0,1" in proc.stderr and "no GPU is visible" in proc.stderr
    assert "leave --gpus out" in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_gpu_ids_beyond_the_visible_ones_are_refused(monkeypatch):
    from sar_prompt.errors import ConfigError
    from sar_prompt.orchestration.preflight import check_gpus_exist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    check_gpus_exist(["0", "1"])
    with pytest.raises(ConfigError, match=r"--gpus 0,1,3: GPU 3 .*2 GPUs \(0-1\)"):
        check_gpus_exist(["0", "1", "3"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    check_gpus_exist(["4", "6"])
    with pytest.raises(ConfigError, match=r"GPU 0 .*CUDA_VISIBLE_DEVICES=4,6"):
        check_gpus_exist(["0"])


def test_jobs_run_side_by_side_on_the_cpu_instead(tmp_path):
    """Parallel jobs without GPUs are asked for as such (--jobs), never through --gpus."""
    proc = bench("--jobs", "2", "--dry-run", "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 jobs at a time on the CPU" in proc.stdout
    proc = bench("--jobs", "2", "--gpus", "0", "--dry-run")
    assert proc.returncode == 2 and "give one of them" in proc.stderr, proc.stderr
    proc = bench("--jobs", "0", "--dry-run")
    assert proc.returncode == 2 and "--jobs (JOBS): 0 is below 1" in proc.stderr, proc.stderr
