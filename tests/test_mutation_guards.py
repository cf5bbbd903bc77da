"""Behaviours mutation testing (scripts/mutation.sh) found no test for: SAR's novel-class
sampling, seed 0, whole-number words of SEEDS / SHOTS / GPUS, and the run lock of a claim
that fails. Each test fails when its behaviour is broken in the way the mutant broke it."""
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO
from sar_prompt.sar import SimilarityAlignment


# -- SAR's novel classes: sampled without replacement, anew each step ------------------------
def sampler(num_novel, total=20, seed=3):
    return SimilarityAlignment(torch.randn(4 + total, 8), num_base=4, num_novel=num_novel,
                               seed=seed)


@pytest.mark.parametrize("num_novel", [1, 5, 19])
def test_each_step_samples_distinct_novel_classes_anew_and_uses_them_all(num_novel):
    sar = sampler(num_novel)
    draws = [sar.sample_novel() for _ in range(200)]
    for index in draws:
        assert index.dtype == torch.long and len(index) == num_novel
        assert len(set(index.tolist())) == num_novel  # without replacement
        assert 0 <= int(index.min()) and int(index.max()) < 20
    changed = sum(not torch.equal(a, b) for a, b in zip(draws, draws[1:]))
    assert changed >= 150  # a new subset at (nearly) every step, not one subset throughout
    used = torch.cat(draws).bincount(minlength=20)
    assert (used > 0).all()  # every novel class takes part over the steps
    expected = 200 * num_novel / 20  # and about equally often (uniform sampling)
    assert used.float().sub(expected).abs().max() < 0.5 * expected + 10


def test_all_novel_classes_when_num_novel_is_zero_or_too_large():
    for num_novel in (0, 20, 50):
        assert sampler(num_novel).sample_novel().tolist() == list(range(20))


# -- seed 0 is a seed ---------------------------------------------------------------------------
DEMO_OPTS = ["OPTIM.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True",
             "TRAINER.SAR.NUM_NOVEL", "3"]


def train_seed0(tmp_path, name, data):
    from sar_prompt.orchestration.demo import CLIP_FILE, DEMO_DIR

    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--root", str(data), "--seed", "0",
         "--trainer", "CoOpSAR", "--dataset-config-file", str(REPO / "configs/datasets/demo.yaml"),
         "--config-file", str(REPO / "configs/trainers/demo.yaml"), "--output-dir", str(out),
         "MODEL.BACKBONE.PATH", str(data / DEMO_DIR / CLIP_FILE), "DATASET.NUM_SHOTS", "4",
         "DATASET.SUBSAMPLE_CLASSES", "base", *DEMO_OPTS],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Setting fixed seed: 0" in proc.stdout
    state = torch.load(out / "prompt_learner" / "model.pth.tar-1", map_location="cpu",
                       weights_only=False)["state_dict"]
    return state


def test_two_runs_with_seed_0_learn_the_same_prompt(tmp_path):
    """Seed 0 seeds every generator as any other seed does (CoOp's own train.py skips it as
    falsy): two runs learn the same context, bit for bit."""
    from sar_prompt.orchestration.demo import prepare

    data = tmp_path / "data"
    prepare(data)
    first, second = (train_seed0(tmp_path, name, data) for name in ("a", "b"))
    assert first.keys() == second.keys() and first
    for key in first:
        assert torch.equal(first[key], second[key]), key


# -- SEEDS / SHOTS / GPUS: whole words only ---------------------------------------------------
@pytest.mark.parametrize("variable, value, word", [
    ("SEEDS", "1a", "1a"), ("SEEDS", "1 2x", "2x"), ("SHOTS", "2.5", "2.5"),
    ("SHOTS", "16 4-", "4-"), ("GPUS", "0,1b", "1b")])
def test_a_word_that_only_starts_with_a_number_is_refused(tmp_path, monkeypatch, capsys,
                                                          variable, value, word):
    from sar_prompt.orchestration import bench

    for name in ("SEEDS", "SHOTS", "GPUS"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"SAR_PROMPT_{name}", raising=False)
    monkeypatch.setenv(variable, value)
    code = bench.main(["base2new", "CoOpSAR", "--datasets", "dtd", "--dry-run", "--output",
                       str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"{variable}={value!r}: {word!r} is not a whole number" in err


# -- a claim that fails lets go of the run folder -----------------------------------------------
@pytest.mark.parametrize("failure", ["a clash under the lock", "an error reading the folder"])
def test_a_failed_claim_leaves_the_run_lock_free(tmp_path, monkeypatch, failure):
    from sar_prompt.errors import ConfigError
    from sar_prompt.runs import lock as run_lock
    from sar_prompt.runs import ownership

    out = tmp_path / "run"
    cfg = SimpleNamespace(OUTPUT_DIR=str(out))
    args = SimpleNamespace(eval_only=False, move_aside=False, overwrite_results=False,
                           no_train=False)
    monkeypatch.setattr(ownership.identity, "requested_fingerprint", lambda cfg: {})
    if failure == "a clash under the lock":  # another run wrote the folder meanwhile
        answers = iter([None, ownership.Clash(str(out), unknown=True)])
        monkeypatch.setattr(ownership, "clash", lambda folder, requested: next(answers))
        expected = ConfigError
    else:
        def broken(folder):
            raise OSError("disk gone")

        monkeypatch.setattr(ownership, "read_run", broken)
        expected = OSError
    with pytest.raises(expected):
        ownership.claim(cfg, args)
    assert run_lock.holder(out) is None  # not held by this process any more
    run_lock.acquire(out).release()  # and free to take
