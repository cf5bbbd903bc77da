"""SAR's diagnostic: the measures on cases with a known answer, and the command on trained
demo runs (a method and its SAR variant)."""
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from sar_prompt.results.diagnose import drift, main
from sar_prompt.modeling.text_encoder import normalize


def features(n=8, dim=16, seed=0):
    return normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)))


def test_a_prompt_equal_to_the_hand_crafted_one_has_not_drifted():
    hand = features()
    m = drift(hand.clone(), hand, k=3)
    assert m["sar_loss"] == pytest.approx(0.0, abs=1e-6)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["knn_kept"] == 1.0 and m["k"] == 3 and m["classes"] == 8


def test_measures_on_a_structure_with_a_known_answer():
    # a rotation of all features keeps every similarity: nothing has drifted
    hand = features(6, 4, seed=1)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)))
    m = drift(hand @ rotation, hand, k=2)
    assert m["sar_loss"] == pytest.approx(0.0, abs=1e-5) and m["spearman"] == pytest.approx(1.0)
    # collapsed learned features (every class the same): rows of ties, neighbours lost
    collapsed = normalize(torch.ones(6, 4))
    m = drift(collapsed, hand, k=2, loss="l1")
    expected_l1 = (1 - (hand @ hand.t())).abs()[~torch.eye(6, dtype=torch.bool)].mean()
    assert m["sar_loss"] == pytest.approx(float(expected_l1), rel=1e-5)
    # two classes moved apart, reversing every class's order of neighbours
    a = normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]))
    b = normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]]))  # 2nd and 3rd swapped
    m = drift(b, a, k=1)
    # class 0's nearest is 1 under a, 2 under b: lost; every row's order reverses
    assert m["spearman"] < 0 and m["knn_kept"] < 1


DEMO_OPTS = ["OPTIM.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True"]


def train_demo(tmp_path, trainer):
    from sar_prompt.orchestration.demo import CLIP_FILE, DEMO_DIR, prepare

    data = tmp_path / "data"
    prepare(data)
    out = tmp_path / "out" / "base2new" / "train_base" / "demo" / "shots_16" / trainer / "demo" \
        / "seed1"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--root", str(data), "--seed", "1",
         "--trainer", trainer, "--dataset-config-file", str(REPO / "configs/datasets/demo.yaml"),
         "--config-file", str(REPO / "configs/trainers/demo.yaml"), "--output-dir", str(out),
         "MODEL.BACKBONE.PATH", str(data / DEMO_DIR / CLIP_FILE), "DATASET.NUM_SHOTS", "16",
         "DATASET.SUBSAMPLE_CLASSES", "base", *DEMO_OPTS],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def test_diagnose_runs_on_demo_coop_and_coopsar_runs(tmp_path, capsys):
    reports = {}
    for trainer in ("CoOp", "CoOpSAR"):
        run = train_demo(tmp_path, trainer)
        output = tmp_path / f"diag_{trainer}"
        assert main([str(run), "--output", str(output), "--k", "3"]) == 0
        out = capsys.readouterr().out
        assert f"{trainer} on SARDemo" in out and "Spearman" in out
        for name in ("diagnose.json", "diagnose.txt", "similarity.pdf", "similarity.png"):
            assert (output / name).is_file(), name
        report = json.loads((output / "diagnose.json").read_text())
        assert set(report["groups"]) == {"base", "new", "novel"}
        assert report["groups"]["base"]["classes"] == 5 and report["groups"]["new"]["classes"] == 5
        assert report["checkpoint"]["epoch"] == 1
        for m in report["groups"].values():
            assert m["sar_loss"] >= 0 and -1 <= m["spearman"] <= 1 and 0 <= m["knn_kept"] <= 1
        reports[trainer] = report
    assert reports["CoOp"]["groups"] != reports["CoOpSAR"]["groups"]


def test_diagnose_bad_inputs(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert main([str(tmp_path / "run")]) == 2
    assert "fingerprint.json is missing" in capsys.readouterr().err
