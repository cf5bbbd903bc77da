import json
import random

import pytest

from fixtures import caltech101_classes
from sar_prompt.datasets.split_dataset import Record, sample_few_shot, subsample_classes
from sar_prompt.errors import DataError


def load(make_cfg, **kw):
    from sar_prompt.datasets import Caltech101

    return Caltech101(make_cfg("CoOp", **kw))


def test_caltech101_all_classes_in_coop_label_order(make_cfg):
    ds = load(make_cfg, subsample="all", shots=-1)
    expected = [name for _, name in caltech101_classes()]
    assert len(expected) == 100
    assert ds.classnames == expected
    assert ds.classnames[:5] == ["face", "leopard", "motorbike", "accordion", "airplane"]
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (300, 100, 100)


def test_base_and_new_halves_relabelled_from_zero(make_cfg):
    base = load(make_cfg, subsample="base")
    new = load(make_cfg, subsample="new")
    names = [name for _, name in caltech101_classes()]
    assert base.classnames == names[:50] and new.classnames == names[50:]
    assert sorted({d.label for d in new.test}) == list(range(50))
    assert {d.classname for d in new.test} == set(names[50:])
    assert base.num_classes == new.num_classes == 50


def test_subsample_odd_count_gives_base_the_extra_class():
    recs = [Record(f"{i}.jpg", i, f"c{i}") for i in range(5)]
    base, = subsample_classes(recs, subsample="base")
    new, = subsample_classes(recs, subsample="new")
    assert [r.classname for r in base] == ["c0", "c1", "c2"]
    assert [(r.label, r.classname) for r in new] == [(0, "c3"), (1, "c4")]


def test_few_shot_sampling_is_dassls_under_the_same_seed():
    """Same seed, same images as the CoOp family's loaders (Dassl's sampler after seeding)."""
    from dassl.data.datasets import DatasetBase

    recs = [Record(f"{c}/{i}.jpg", c, f"class{c}") for i in range(10) for c in (3, 1, 2)]
    ours = sample_few_shot(recs, 4, random.Random(5))

    class Item:  # Dassl's Datum needs files on disk; the sampler only reads .label
        def __init__(self, record):
            self.label, self.record = record.label, record

    random.seed(5)
    theirs = DatasetBase.__new__(DatasetBase).generate_fewshot_dataset(
        [Item(r) for r in recs], num_shots=4)
    assert [t.record for t in theirs] == ours
    assert [r.label for r in ours] == [3] * 4 + [1] * 4 + [2] * 4


def test_few_shot_cache_is_deterministic_relative_and_reused(make_cfg, fresh_caltech_root):
    one = load(make_cfg, root=fresh_caltech_root, shots=2, seed=1)
    cache_dir = fresh_caltech_root / "caltech-101" / "split_fewshot"
    files = list(cache_dir.glob("shot_2-seed_1-*.json"))
    assert len(files) == 1
    cached = json.loads(files[0].read_text())
    assert cached["num_shots"] == 2 and cached["seed"] == 1
    assert all(not e[0].startswith("/") for e in cached["train"])  # relative paths
    again = load(make_cfg, root=fresh_caltech_root, shots=2, seed=1)
    assert [d.impath for d in again.train_x] == [d.impath for d in one.train_x]
    other = load(make_cfg, root=fresh_caltech_root, shots=2, seed=2)
    assert [d.impath for d in other.train_x] != [d.impath for d in one.train_x]
    assert len(one.train_x) == 50 * 2 and len(one.val) == 50  # val: min(shots, 4) = 1 here
    # the cache holds what sampling gives: deleting it reproduces the same images
    files[0].unlink()
    fresh = load(make_cfg, root=fresh_caltech_root, shots=2, seed=1)
    assert [d.impath for d in fresh.train_x] == [d.impath for d in one.train_x]


def test_missing_root(make_cfg, tmp_path):
    with pytest.raises(DataError, match="DATASET.ROOT"):
        load(make_cfg, root=tmp_path / "nowhere")


def test_missing_split_file_names_it(make_cfg, fresh_caltech_root):
    split = fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json"
    split.unlink()
    with pytest.raises(DataError, match="split_zhou_Caltech101.json"):
        load(make_cfg, root=fresh_caltech_root)


def test_split_not_json(make_cfg, fresh_caltech_root):
    split = fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json"
    split.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load(make_cfg, root=fresh_caltech_root)


def test_malformed_split_entry(make_cfg, fresh_caltech_root):
    split = fresh_caltech_root / "caltech-101" / "split_zhou_Caltech101.json"
    data = json.loads(split.read_text())
    data["test"][3] = ["x.jpg", "seven", "ant"]
    split.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"test\[3\]"):
        load(make_cfg, root=fresh_caltech_root)


def test_image_listed_but_absent(make_cfg, fresh_caltech_root):
    img = fresh_caltech_root / "caltech-101" / "101_ObjectCategories" / "ant" / "image_0005.jpg"
    img.unlink()  # ant's test image
    with pytest.raises(DataError) as err:
        load(make_cfg, root=fresh_caltech_root, subsample="all")
    assert "ant/image_0005.jpg" in str(err.value) and "1 test image" in str(err.value)
