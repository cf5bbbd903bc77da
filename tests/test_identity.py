"""A run's identity (what changes its result) and the config folder names overrides give."""
import pytest

from conftest import REPO
from sar_prompt.runs import fingerprint
from sar_prompt.runs import identity
from sar_prompt.errors import ConfigError
from sar_prompt.runs.protocols import Benchmark


def test_no_overrides_keep_the_config_name():
    assert identity.config_folder("vit_b16_ctxv1") == "vit_b16_ctxv1"
    assert identity.config_folder("vit_b16_ctxv1", ("MODEL.BACKBONE.PATH", "/w/clip.pt",
                                                    "DATASET.ROOT", "/data")) == "vit_b16_ctxv1"


def test_overrides_are_sorted_trainer_prefix_dropped_numbers_canonical():
    name = identity.config_folder("vit_b16_ctxv1", ("TRAINER.SAR.WEIGHT", "5.0",
                                                    "OPTIM.MAX_EPOCH", "2"))
    assert name == "vit_b16_ctxv1__OPTIM.MAX_EPOCH=2,SAR.WEIGHT=5"
    for same in ("5", "5.0", "5.", "5e0"):  # one number, one name
        assert identity.config_folder("c", ("TRAINER.SAR.WEIGHT", same)) == "c__SAR.WEIGHT=5"
    assert identity.config_folder("c", ("TRAINER.SAR.WEIGHT", "0.50")) == "c__SAR.WEIGHT=0.5"
    assert identity.config_folder("c", ("OPTIM.LR", "1e-5")) == "c__OPTIM.LR=1e-05"
    assert identity.config_folder("c", ("INPUT.SIZE", "(32, 32)")) == "c__INPUT.SIZE=32+32"
    assert identity.config_folder("c", ("TRAINER.SAR.LOSS", "kl")) == "c__SAR.LOSS=kl"
    # the order given does not matter; the last value of a repeated key counts
    a = identity.config_folder("c", ("A.X", "1", "B.Y", "2"))
    assert a == identity.config_folder("c", ("B.Y", "2", "A.X", "1")) == \
        identity.config_folder("c", ("A.X", "9", "B.Y", "2", "A.X", "1"))


def test_odd_characters_are_replaced_and_a_hash_keeps_names_apart():
    a = identity.config_folder("c", ("TRAINER.SAR.NOVEL_FILE", "/lists/a b.json"))
    b = identity.config_folder("c", ("TRAINER.SAR.NOVEL_FILE", "/lists/a_b.json"))
    assert a.startswith("c__SAR.NOVEL_FILE=_lists_a_b.json-h") and a != b
    assert all(ch.isalnum() or ch in "._=+,-" for ch in a)
    assert a == identity.config_folder("c", ("TRAINER.SAR.NOVEL_FILE", "/lists/a b.json"))
    long = identity.config_folder("c", tuple(w for i in range(8) for w in (f"K.KEY{i}", "1")))
    tail = long.split("__", 1)[1]
    assert len(tail) <= identity.MAX_TAG and "-h" in tail


def test_an_explicit_tag_replaces_the_readable_part():
    opts = ("TRAINER.SAR.WEIGHT", "5")
    assert identity.config_folder("c", opts, tag="mine") == "c__mine"
    assert identity.config_folder("c", opts + ("OPTIM.LR", "0.1"), tag="mine",
                                  point=("OPTIM.LR", "0.1")) == "c__mine,OPTIM.LR=0.1"
    with pytest.raises(ConfigError, match="tag"):
        identity.config_folder("c", opts, tag="a/b")
    b = Benchmark(protocol="base2new", trainer="CoOpSAR", datasets=("dtd",), seeds=(1,),
                  data="/d", output="/o", opts=opts, tag="w5")
    assert b.jobs()[0].runs[0].output_dir.endswith("/CoOpSAR/vit_b16_ctxv1__w5/seed1")


def test_demo_weights_are_not_part_of_the_name(tmp_path):
    from sar_prompt.orchestration import bench

    args = bench.parse(["base2new", "CoOpSAR", "--datasets", "demo", "--data", str(tmp_path)])
    run = bench.benchmark(args).jobs()[0].runs[0]
    assert "MODEL.BACKBONE.PATH" in run.argv() and run.config == "demo"


def requested(*opts, trainer="CoOpSAR"):
    argv = ["--root", "/data", "--seed", "1", "--trainer", trainer, "--dataset-config-file",
            str(REPO / "configs/datasets/dtd.yaml"), "--config-file",
            str(REPO / "configs/trainers/CoOp/vit_b16_ctxv1.yaml"), "--output-dir", "/o", *opts]
    return identity.requested_from_argv(argv)


def test_identity_is_the_config_less_where_files_are_plus_the_novel_list(tmp_path):
    base = requested()
    here = requested("MODEL.BACKBONE.PATH", "/elsewhere.pt", "TRAIN.CHECKPOINT_FREQ", "1")
    assert identity.differences(identity.of_fingerprint(base),
                                identity.of_fingerprint(here)) == []
    other = requested("TRAINER.SAR.WEIGHT", "5", "OPTIM.MAX_EPOCH", "2")
    assert identity.differences(identity.of_fingerprint(base), identity.of_fingerprint(other)) \
        == [("OPTIM.MAX_EPOCH", 200, 2), ("TRAINER.SAR.WEIGHT", 1.0, 5.0)]
    seed = requested("--seed", "2")  # argparse: the later --seed wins
    assert [d[0] for d in identity.differences(identity.of_fingerprint(base),
                                               identity.of_fingerprint(seed))] == ["SEED"]
    shipped = base["novel_classes"]["file"]
    assert shipped.endswith("novel_classes/dtd.json") and len(base["novel_classes"]["sha256"]) == 64
    text = open(shipped, encoding="utf-8").read()
    copy, edited = tmp_path / "copy.json", tmp_path / "edited.json"
    copy.write_text(text)
    edited.write_text(text.replace("\n", "\n ", 1))  # other bytes: another list, for all we know
    for path, keys in ((copy, []), (edited, [identity.NOVEL_KEY])):  # content, not place
        given = requested("TRAINER.SAR.NOVEL_FILE", str(path))
        assert [d[0] for d in identity.differences(identity.of_fingerprint(base),
                                                   identity.of_fingerprint(given))] == keys
    assert requested(trainer="CoOp")["novel_classes"] is None  # CoOp reads no list


def test_fingerprints_comparable_part_is_the_identity_less_seed_and_half():
    a = {"schema": fingerprint.SCHEMA, **requested()}
    b = {"schema": fingerprint.SCHEMA, **requested("--seed", "3", "MODEL.BACKBONE.PATH", "/x")}
    assert fingerprint.differences(a, b) == []          # seeds of one setting average
    c = {"schema": fingerprint.SCHEMA, **requested("TRAINER.SAR.WEIGHT", "5")}
    assert fingerprint.differences(a, c) == ["config.TRAINER.SAR.WEIGHT"]
    for key in identity.LOCATION_KEYS:
        assert key in fingerprint.RUN_SPECIFIC_KEYS
