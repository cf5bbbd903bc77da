"""What `results` finds on disk (sar_prompt/results/records.py): only real run folders, all
of them, and the selections and summaries built on them."""
import dataclasses

import pytest

from sar_prompt.results.records import (RunRecord, most_common_shots, on_disk_summary, scan,
                                        select)


def make_runs(root, trainer="CoOp", config="cfg", shots=16, seeds=(1, 2), phase="train_base",
              dataset="dtd"):
    for seed in seeds:
        (root / phase / dataset / f"shots_{shots}" / trainer / config / f"seed{seed}").mkdir(
            parents=True, exist_ok=True)


def test_scan_lists_every_run_folder_and_nothing_else(tmp_path):
    make_runs(tmp_path, seeds=range(1, 11))
    config = tmp_path / "train_base" / "dtd" / "shots_16" / "CoOp" / "cfg"
    for name in ("seed_old", "seeds", "seedling", "seed1a", "seedX"):  # not run folders
        (config / name).mkdir()
    (config / "seed11").write_text("a file, not a run folder")
    found = scan(tmp_path)
    assert [r.seed for r in found] == list(range(1, 11))
    assert found[0] == RunRecord("train_base", "dtd", 16, "CoOp", "cfg", 1, config / "seed1")


def test_a_run_record_is_immutable_and_hashable(tmp_path):
    make_runs(tmp_path, seeds=[1])
    (record,) = scan(tmp_path)
    assert len({record, scan(tmp_path)[0]}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.seed = 2


def test_select_keeps_only_the_asked_config_trainer_shots_phase_and_dataset(tmp_path):
    make_runs(tmp_path, config="cfg_a", seeds=[1])
    make_runs(tmp_path, config="cfg_b", seeds=[1, 2])
    make_runs(tmp_path, trainer="CoOpSAR", config="cfg_b", seeds=[3], shots=4)
    make_runs(tmp_path, phase="test_new", dataset="eurosat", config="cfg_b", seeds=[5])
    records = scan(tmp_path)
    assert [(r.config, r.seed) for r in select(records, config="cfg_a")] == [("cfg_a", 1)]
    assert [r.seed for r in select(records, config="cfg_b", trainers=["CoOp"],
                                   phases=["train_base"])] == [1, 2]
    assert [r.seed for r in select(records, shots=[4])] == [3]
    assert [r.seed for r in select(records, datasets=["eurosat"])] == [5]
    assert len(select(records)) == 5


def test_most_common_shots():
    assert most_common_shots([], 16) == 16  # nothing on disk: the preferred shots
    records = [RunRecord("train_base", "dtd", s, "CoOp", "cfg", 1, None) for s in (4, 4, 8)]
    assert most_common_shots(records, 16) == 4
    assert most_common_shots(records, 8) == 8


def test_on_disk_summary(tmp_path):
    assert on_disk_summary([]) == "nothing on disk"
    make_runs(tmp_path, seeds=[2, 1])
    make_runs(tmp_path, config="other", seeds=[3], shots=4)
    make_runs(tmp_path, config="cfg", seeds=[7], shots=4)
    assert on_disk_summary(scan(tmp_path)) == (
        "shots_4/cfg: seed 7 found; shots_4/other: seed 3 found; shots_16/cfg: seeds 1 2 found")


def test_seed_folders_are_the_seed_directories_only(tmp_path):
    from sar_prompt.results.records import is_seed_folder_parent, seed_folders

    assert not is_seed_folder_parent(tmp_path)
    (tmp_path / "seed10").mkdir()
    (tmp_path / "seed2").mkdir()
    (tmp_path / "seed3").write_text("a file")
    (tmp_path / "logs").mkdir()
    assert seed_folders(tmp_path) == {2: tmp_path / "seed2", 10: tmp_path / "seed10"}
    assert list(seed_folders(tmp_path)) == [2, 10]
    assert is_seed_folder_parent(tmp_path) and not is_seed_folder_parent(tmp_path / "seed3")
