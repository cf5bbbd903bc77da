"""The synthetic world: rendering and pretraining are deterministic, the shipped weights,
class list and novel list are what the generator makes, and the world's runs go through the
normal pipeline with a zero-shot accuracy far above chance."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from sar_prompt.world import dataset, pretrain, render, spec, weights

TINY = pretrain.Settings(steps=3, batch_size=8, images_per_class=2, warmup=1)


def test_the_same_seed_renders_the_same_bytes_and_another_seed_other_ones():
    for style in ("photo", "drawing"):
        first, look = render.render("red star", 0, "train", 4, 7, style)
        again, look_again = render.render("red star", 0, "train", 4, 7, style)
        assert render.png_bytes(first) == render.png_bytes(again) and look == look_again
        assert first.size == (render.SIZE, render.SIZE) and look.style == style
        other, _ = render.render("red star", 0, "train", 4, 8, style)
        assert render.png_bytes(other) != render.png_bytes(first)
    test, _ = render.render("red star", 0, "test", 4, 7)
    assert render.png_bytes(test) != render.png_bytes(render.render("red star", 0, "train", 4, 7)[0])


def test_an_image_depends_on_its_class():
    """Colour and shape both show: the mean colour of the shape's pixels follows the colour,
    and two shapes of one colour differ."""
    red, _ = render.render("red circle", 0, "train", 0, 0)
    blue, _ = render.render("blue circle", 0, "train", 0, 0)
    square, _ = render.render("red square", 0, "train", 0, 0)
    r, b = (np.asarray(i, dtype=float).reshape(-1, 3) for i in (red, blue))
    assert r.max(0)[0] > r.max(0)[2] and b.max(0)[2] > b.max(0)[0]
    assert not np.array_equal(np.asarray(red), np.asarray(square))


def test_the_split_covers_every_class_once():
    base, new, novel = spec.split()
    assert (len(base), len(new), len(novel)) == (35, 35, 30)
    assert sorted(base + new + novel) == sorted(spec.ALL_CLASSES)
    assert spec.split() == (base, new, novel) and spec.split(1) != (base, new, novel)


def test_short_text_features_are_clips_own():
    model = pretrain.build(TINY)
    tokens = pretrain.tokenize(["a photo of a red circle.", "blue ring.", "a drawing of a pink star."])
    short = pretrain.ShortText(model, tokens)
    with torch.no_grad():
        assert torch.allclose(short(short.tokens), model.encode_text(tokens), atol=1e-5)


def test_pretraining_is_deterministic_and_its_weights_round_trip():
    state, summary = pretrain.pretrain(TINY)
    again, _ = pretrain.pretrain(TINY)
    compact = weights.compact(state, pretrain.settings_record(TINY))
    assert weights.to_bytes(compact) == weights.to_bytes(
        weights.compact(again, pretrain.settings_record(TINY)))
    other, _ = pretrain.pretrain(pretrain.Settings(**{**TINY.__dict__, "seed": 1}))
    assert not torch.equal(other["visual.proj"], state["visual.proj"])
    expanded = weights.expand(compact)
    assert expanded.keys() == state.keys()
    assert all(torch.equal(expanded[k], state[k]) for k in state)
    assert summary["settings"]["threads"] == pretrain.THREADS


def test_the_shipped_weights_are_a_clip_of_the_world():
    from sar_prompt.modeling.backbone import import_clip

    compact = weights.read_compact()
    assert compact["settings"]["world_seed"] == spec.WORLD_SEED
    model = import_clip().model.build_model(weights.expand(compact))
    assert model.visual.input_resolution == spec.ARCHITECTURE["image_resolution"]
    assert weights.shipped_path().stat().st_size < 2_000_000


def test_the_shipped_class_and_novel_lists_are_the_generators():
    from sar_prompt.classnames import base_and_new
    from sar_prompt.novel import default_path, load

    base, new, novel = spec.split()
    assert base_and_new("world") == (list(base), list(new))
    shipped = load(default_path("world"), "world", "SARWorld")
    assert shipped.names == list(novel)
    assert shipped.provenance == spec.novel_list()["provenance"]
    assert shipped.provenance["source"] == "world-generator"
    assert "NOT produced by GPT-4o" in shipped.provenance["description"]


def test_prepare_writes_a_whole_world_and_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "PER_SPLIT", {"train": 2, "val": 1, "test": 1})
    base = dataset.prepare(tmp_path)
    split = json.loads((base / dataset.SPLIT_FILE).read_text())
    assert [len(split[p]) for p in ("train", "val", "test")] == [140, 70, 70]
    assert {r[1] for r in split["train"]} == set(range(70))
    assert split["train"][0][2] == spec.split()[0][0] and split["train"][-1][1] == 69
    stamp = (base / dataset.CLIP_FILE).stat().st_mtime_ns
    assert dataset.prepare(tmp_path) == base
    assert (base / dataset.CLIP_FILE).stat().st_mtime_ns == stamp  # kept, not rewritten
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def run_world(tmp_path, *args):
    env = {**os.environ, "PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "sar_prompt", "world", *args,
                           "--data", str(tmp_path / "data"), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_a_short_world_run_zero_shot_far_above_chance(tmp_path):
    """The world through the normal pipeline: zero-shot CLIP, CoOp and CoOpSAR (one epoch,
    one seed), the paired table, and SAR's gradient scale in the CoOpSAR run's log."""
    out = run_world(tmp_path, "OPTIM.MAX_EPOCH", "1", "--seeds", "1")
    report = json.loads((tmp_path / "out/base2new/tables/world__OPTIM.MAX_EPOCH=1.json").read_text())
    zero_shot = next(a for a in report["arms"] if a["label"] == "ZeroshotCLIP")
    base, new = zero_shot["seeds"]["1"]
    assert base > 70 and new > 70  # chance: 1/35 = 2.9%
    assert "| CoOpSAR - CoOp | 1 |" in out and "| ZeroshotCLIP | zero-shot |" in out
    assert report["settings"]["world"]["clip_weights"]["compact_sha256"] == \
        weights.digest(weights.read_compact())
    log = next((tmp_path / "out/base2new/train_base/world").glob("shots_16/CoOpSAR/*/seed1/log.txt"))
    assert "[sar_prompt] SAR gradient scale, step 1:" in log.read_text()
    events = list(log.parent.glob("tensorboard/events*"))  # none with the Dassl test double
    assert all(b"train/sar_grad_ratio" in e.read_bytes() for e in events)
    assert (tmp_path / "out/base2new/tables/world__OPTIM.MAX_EPOCH=1.png").is_file() or "no figure" in out


@pytest.mark.slow
def test_the_shipped_weights_are_what_pretraining_writes():
    """`sar-prompt world pretrain` with the shipped settings writes the shipped weights, bit
    for bit (on a machine like the one that made them; about 3 minutes of one core)."""
    shipped = weights.read_compact()
    settings = pretrain.Settings(**{k: v for k, v in shipped["settings"].items()
                                    if k != "threads"})
    state, _ = pretrain.pretrain(settings)
    assert weights.to_bytes(weights.compact(state, pretrain.settings_record(settings))) == \
        weights.shipped_path().read_bytes()
