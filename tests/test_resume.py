"""A resumed run is the same run; resume and evaluation faults give clear messages."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, TINY_TRAINER_OPTS
from sar_prompt.errors import CheckpointError, SarPromptError


def train_argv(root, clip, out, *flags, trainer="CoOpSAR", epochs=6, subsample="base"):
    return [sys.executable, str(REPO / "train.py"), "--root", str(root), "--seed", "1",
            "--trainer", trainer, *flags,
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--output-dir", str(out), *TINY_TRAINER_OPTS, "MODEL.BACKBONE.PATH", str(clip),
            "DATASET.SUBSAMPLE_CLASSES", subsample, "OPTIM.MAX_EPOCH", str(epochs),
            "TRAIN.CHECKPOINT_FREQ", "1"]


def final_ctx(out, epoch):
    ckpt = torch.load(out / "prompt_learner" / f"model.pth.tar-{epoch}", weights_only=True)
    return ckpt["state_dict"]["ctx"]


def test_run_killed_and_restarted_ends_bit_identical(caltech_root, tiny_clip_path, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    subprocess.run(train_argv(caltech_root, tiny_clip_path, whole), check=True,
                   capture_output=True, timeout=600)

    proc = subprocess.Popen(train_argv(caltech_root, tiny_clip_path, resumed),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = resumed / "prompt_learner" / "checkpoint"  # written right after each checkpoint

    def saved_epoch_2():
        return pointer.exists() and pointer.read_text().strip() == "model.pth.tar-2"

    deadline = time.monotonic() + 600
    while not saved_epoch_2() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    assert not (resumed / "results.json").exists()

    subprocess.run(train_argv(caltech_root, tiny_clip_path, resumed), check=True,
                   capture_output=True, timeout=600)
    assert torch.equal(final_ctx(resumed, 6), final_ctx(whole, 6))
    result = json.loads((resumed / "results.json").read_text())
    assert result["accuracy"] == json.loads((whole / "results.json").read_text())["accuracy"]
    resumes = json.loads((resumed / "resumes.json").read_text())
    assert len(resumes) == 1 and resumes[0]["epoch"] >= 2 and resumes[0]["exact"]
    assert result["resumed_at_epochs"] == [resumes[0]["epoch"]]
    assert not (whole / "resumes.json").exists()


def test_checkpoint_carries_random_states_and_step(build_trainer, tmp_path):
    trainer = build_trainer("CoOpSAR", "OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True",
                            output=tmp_path)
    trainer.train()
    state = torch.load(tmp_path / "prompt_learner" / "model.pth.tar-1",
                       weights_only=True)["training_state"]
    assert set(state["rng"]) >= {"python", "numpy", "torch", "cuda", "generators"}
    assert "sar" in state["rng"]["generators"] and state["step"] == 9


@pytest.fixture
def trained(build_trainer, tmp_path):
    """A finished 2-epoch run with checkpoints at epochs 1 and 2."""
    out = tmp_path / "run"
    build_trainer("CoOp", "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True",
                  output=out).train()
    return out


def test_truncated_last_checkpoint_offers_the_previous_epoch(build_trainer, trained):
    last = trained / "prompt_learner" / "model.pth.tar-2"
    last.write_bytes(last.read_bytes()[:200])
    trainer = build_trainer("CoOp", "OPTIM.MAX_EPOCH", "3", output=trained)
    with pytest.raises(CheckpointError) as err:
        trainer.train()
    message = str(err.value)
    assert str(last) in message and "truncated" in message
    assert "previous saved epoch is 1" in message and "model.pth.tar-1" in message


def test_empty_pointer_names_the_newest_checkpoint(build_trainer, trained):
    (trained / "prompt_learner" / "checkpoint").write_text("")
    trainer = build_trainer("CoOp", "OPTIM.MAX_EPOCH", "3", output=trained)
    with pytest.raises(CheckpointError, match="is missing or empty.*model.pth.tar-2"):
        trainer.train()


def run_eval(root, clip, out, *flags):
    argv = train_argv(root, clip, out, "--eval-only", *flags, trainer="CoOp", subsample="new")
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "unsaved epoch"])
def test_model_dir_mistakes_name_the_fix(build_trainer, trained, tmp_path, case):
    folder, epoch, expected = {
        "missing folder": (tmp_path / "nope", 2, "does not exist"),
        "empty folder": (tmp_path, 2, "holds no prompt_learner/"),
        "unsaved epoch": (trained, 7, "saved there are 1, 2"),
    }[case]
    trainer = build_trainer("CoOp", subsample="new", output=tmp_path / "eval")
    with pytest.raises(SarPromptError, match=expected):
        trainer.load_model(str(folder), epoch=epoch)


@pytest.mark.parametrize("case", ["no model dir", "finished output"])
def test_eval_only_refusals_exit_2(caltech_root, tiny_clip_path, trained, tmp_path, case):
    out = tmp_path / "eval"
    flags = [] if case == "no model dir" else ["--model-dir", str(trained), "--load-epoch", "2"]
    if case == "finished output":
        out.mkdir()
        (out / "results.json").write_text('{"accuracy": 50.0}')
    proc = run_eval(caltech_root, tiny_clip_path, out, *flags)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert ("ZeroshotCLIP" if case == "no model dir" else "--overwrite-results") in proc.stderr
    if case == "finished output":
        assert (out / "results.json").read_text() == '{"accuracy": 50.0}'
        proc = run_eval(caltech_root, tiny_clip_path, out, "--overwrite-results", *flags)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads((out / "results.json").read_text())["checkpoint"]["epoch"] == 2
