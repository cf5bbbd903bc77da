"""The protocols' job lists: which runs, in which folders, with which command lines and
default configs, for given datasets, seeds and shots."""
from pathlib import Path

import pytest

from conftest import REPO
from sar_prompt.runs import protocols as protocol
from sar_prompt.errors import ConfigError
from sar_prompt.runs.protocols import Benchmark, Method

CONFIGS = REPO / "configs" / "trainers"


def bench(protocol_name="base2new", trainer="CoOpSAR", **kw):
    return Benchmark(protocol=protocol_name, trainer=trainer, data="/data", output="/out", **kw)


def test_base2new_jobs_train_base_then_evaluate_new():
    jobs = bench(datasets=("imagenet", "eurosat"), seeds=(1, 2)).jobs()
    assert [j.label for j in jobs] == ["imagenet CoOpSAR seed 1", "imagenet CoOpSAR seed 2",
                                      "eurosat CoOpSAR seed 1", "eurosat CoOpSAR seed 2"]
    train, test = jobs[2].runs
    common = "eurosat/shots_16/CoOpSAR/vit_b16_ctxv1/seed1"
    assert train.output_dir == f"/out/base2new/train_base/{common}"
    assert test.output_dir == f"/out/base2new/test_new/{common}"
    assert train.config_file == str(CONFIGS / "CoOp" / "vit_b16_ctxv1.yaml")  # the method's
    assert train.argv() == [
        "--root", "/data", "--seed", "1", "--trainer", "CoOpSAR", "--dataset-config-file",
        str(REPO / "configs/datasets/eurosat.yaml"), "--config-file", train.config_file,
        "--output-dir", train.output_dir, "DATASET.NUM_SHOTS", "16",
        "DATASET.SUBSAMPLE_CLASSES", "base", "TRAIN.CHECKPOINT_FREQ", "1"]
    assert test.argv(load_epoch=200)[12:] == [
        "--model-dir", train.output_dir, "--load-epoch", "200", "--eval-only",
        "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new"]
    assert jobs[0].runs[0].config == "vit_b16_ep50_ctxv1"  # CoOp: 50 epochs on ImageNet


def test_options_and_config_override_reach_every_run(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("OPTIM: {MAX_EPOCH: 1}\n")
    jobs = bench(datasets=("dtd",), seeds=(3,), config=str(cfg),
                 opts=("TRAINER.SAR.WEIGHT", "2.0")).jobs()
    for run in jobs[0].runs:  # the overrides name the config folder
        assert run.config == "mine__SAR.WEIGHT=2" and run.config_file == str(cfg.resolve())
        assert run.argv()[-2:] == ["TRAINER.SAR.WEIGHT", "2.0"]
        assert "/mine__SAR.WEIGHT=2/seed3" in run.output_dir


def test_fewshot_jobs_and_coops_epochs_per_shots():
    jobs = bench("fewshot", "CoOp", datasets=("eurosat", "imagenet"), seeds=(1, 2, 3)).jobs()
    assert len(jobs) == 2 * 5 * 3 and all(len(j.runs) == 1 for j in jobs)
    by_shots = {j.runs[0].shots: j.runs[0].config for j in jobs if j.runs[0].dataset == "eurosat"}
    assert by_shots == {1: "vit_b16_ep50_ctxv1", 2: "vit_b16_ep50_ctxv1", 4: "vit_b16_ep100_ctxv1",
                        8: "vit_b16_ep100_ctxv1", 16: "vit_b16_ctxv1"}
    assert {j.runs[0].config for j in jobs if j.runs[0].dataset == "imagenet"} == \
        {"vit_b16_ep50_ctxv1"}
    run = jobs[0].runs[0]
    assert run.output_dir == "/out/fewshot/train_all/eurosat/shots_1/CoOp/vit_b16_ep50_ctxv1/seed1"
    assert "DATASET.SUBSAMPLE_CLASSES" in run.argv() and run.argv()[-3] == "all"


@pytest.mark.parametrize("name, targets", [("xd", 10), ("dg", 4)])
def test_transfer_trains_on_imagenet_once_per_seed_then_evaluates_every_target(name, targets):
    jobs = bench(name, "CoOp", seeds=(1, 2)).jobs()
    assert len(jobs) == 2
    source, *tests = jobs[1].runs
    assert len(tests) == targets and "imagenet" not in {t.dataset for t in tests}
    root = "/out/transfer/from_imagenet"
    assert source.output_dir == f"{root}/train_all/imagenet/shots_16/CoOp/vit_b16_ep50_ctxv1/seed2"
    assert source.subsample == "all" and not source.eval_only
    for t in tests:  # CoOp's xd_test: all of the target's images, the source's config
        assert t.train_dir == source.output_dir and t.eval_only and t.config == source.config
        assert "DATASET.NUM_SHOTS" not in t.argv() and t.output_dir.startswith(f"{root}/test_all/")
    if name == "dg":
        assert [t.dataset for t in tests] == ["imagenetv2", "imagenet_sketch", "imagenet_a",
                                              "imagenet_r"]


def test_defaults_of_other_methods_name_their_reference_configs():
    assert protocol.default_config("CoCoOp", "base2new", "imagenet", 16) == \
        "vit_b16_c4_ep10_batch1_ctxv1"
    assert protocol.default_config("CoCoOpSAR", "xd", "imagenet", 16) == \
        "vit_b16_c4_ep10_batch1_ctxv1"
    assert protocol.default_config("MaPLe", "base2new", "dtd", 16) == "vit_b16_c2_ep5_batch4_2ctx"
    assert protocol.default_config("MaPLe", "xd", "imagenet", 16) == \
        "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"
    assert protocol.default_config("PromptSRC", "fewshot", "dtd", 4) == \
        "vit_b16_c2_ep50_batch4_4+4ctx_few_shot"
    assert protocol.default_config("KgCoOpSAR", "base2new", "imagenet", 16) == "vit_b16_ep100_ctxv1"
    assert protocol.default_config("MyMethod", "base2new", "dtd", 16) is None


def test_a_method_without_its_config_file_fails_clearly(tmp_path):
    configs = tmp_path / "configs"
    (configs / "datasets").mkdir(parents=True)
    (configs / "datasets" / "dtd.yaml").write_text("DATASET: {NAME: DescribableTextures}\n")
    b = bench(trainer="CoCoOpSAR", datasets=("dtd",), config_root=str(configs))
    with pytest.raises(ConfigError) as err:
        b.jobs()
    text = str(err.value)
    assert "no config 'vit_b16_c4_ep10_batch1_ctxv1' for CoCoOpSAR" in text
    assert f"{configs}/trainers/CoCoOp/" in text and "set CFG" in text


def test_zero_shot_clip_only_evaluates(monkeypatch, tmp_path):
    jobs = bench(trainer="ZeroshotCLIP", datasets=("eurosat",), seeds=(1,),
                 config=str(REPO / "configs/trainers/demo.yaml")).jobs()
    base, new = jobs[0].runs
    assert base.eval_only and new.eval_only and not base.train_dir and not new.train_dir
    assert base.argv()[-4:] == ["DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"]
    assert "--eval-only" in base.argv() and "--model-dir" not in new.argv()


def test_the_method_table_is_the_place_to_add_a_method(monkeypatch, tmp_path):
    (tmp_path / "trainers" / "NewMethod").mkdir(parents=True)
    (tmp_path / "trainers" / "NewMethod" / "vit_b16_x.yaml").write_text("{}\n")
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "dtd.yaml").write_text("{}\n")
    monkeypatch.setitem(protocol.METHODS, "NewMethod", Method("NewMethod", "vit_b16_x"))
    jobs = bench(trainer="NewMethodSAR", datasets=("dtd",), seeds=(1,),
                 config_root=str(tmp_path)).jobs()
    assert Path(jobs[0].runs[0].config_file) == tmp_path / "trainers/NewMethod/vit_b16_x.yaml"


def test_bad_requests_fail_with_the_fix():
    with pytest.raises(ConfigError, match="unknown dataset 'caltech1O1'.*caltech101"):
        bench(datasets=("caltech1O1",)).jobs()
    with pytest.raises(ConfigError, match="set CFG"):
        bench(trainer="MyMethod", datasets=("dtd",)).jobs()
    with pytest.raises(ConfigError, match="one number of shots"):
        bench(shots=(1, 2))
    with pytest.raises(ConfigError, match="unknown protocol"):
        bench("b2n")


@pytest.mark.parametrize("name, runs_per_job", [("base2new", 2), ("fewshot", 1), ("xd", 11),
                                                ("dg", 5)])
def test_zeroshot_clip_is_evaluated_once_per_dataset_and_phase(name, runs_per_job):
    jobs = bench(name, "ZeroshotCLIP", seeds=(1, 2, 3),
                 **({"datasets": ("dtd", "eurosat")} if name in ("base2new", "fewshot")
                    else {})).jobs()
    per_dataset = {"base2new": 2, "fewshot": 2 * 5}.get(name, 1)  # fewshot: per shots too
    assert len(jobs) == per_dataset and all(len(j.runs) == runs_per_job for j in jobs)
    for job in jobs:
        assert "zero-shot" in job.label and "seed" not in job.label
        for run in job.runs:  # the first seed's folder: where earlier versions wrote seed 1
            assert run.eval_only and run.seed == 1 and run.output_dir.endswith("/seed1")
            assert run.label.endswith(f"zero-shot {run.phase_label}")
    trained = bench(name, "CoOp", seeds=(1, 2, 3),
                    **({"datasets": ("dtd",)} if name in ("base2new", "fewshot") else {})).jobs()
    assert {r.seed for j in trained for r in j.runs} == {1, 2, 3}


def test_configs_are_found_through_the_package_and_a_missing_folder_is_named(tmp_path):
    import sar_prompt.configs

    assert protocol.CONFIG_ROOT == Path(list(sar_prompt.configs.__path__)[0]).resolve()
    assert (protocol.CONFIG_ROOT / "datasets" / "caltech101.yaml").is_file()
    with pytest.raises(ConfigError, match="installation is incomplete; reinstall sar-prompt"):
        protocol.dataset_config("caltech101", config_root=tmp_path)
