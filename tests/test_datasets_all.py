"""Every base-to-new loader on a fixture in its exact layout: class names and label order
(derived by the fixture the CoOp way, compared with the bundled lists), counts, base/new
halves, few-shot determinism and its cache keying."""
import json
import types
from pathlib import Path

import pytest

from fixtures import imagenet_wnids, write_dataset
from sar_prompt.catalog import BENCHMARK
from sar_prompt.classnames import class_names

KEYS = [d.key for d in BENCHMARK]
COUNTS = {"imagenet": 1000, "caltech101": 100, "oxford_pets": 37, "stanford_cars": 196,
          "oxford_flowers": 102, "food101": 101, "fgvc_aircraft": 100, "sun397": 397,
          "dtd": 47, "eurosat": 10, "ucf101": 101}
PER_SPLIT = (2, 1, 1)  # train, val, test images per class (ImageNet: train, -, val)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """All eleven datasets under one root, with the class lists their writers derived."""
    root = tmp_path_factory.mktemp("all_datasets")
    derived = {key: write_dataset(key, root, PER_SPLIT) for key in KEYS}
    return root, derived


def cfg(root, shots=-1, subsample="all", seed=1):
    return types.SimpleNamespace(SEED=seed, DATASET=types.SimpleNamespace(
        ROOT=str(root), NUM_SHOTS=shots, SUBSAMPLE_CLASSES=subsample))


def load(key, root, **kw):
    from sar_prompt.datasets import by_key

    return by_key(key)(cfg(root, **kw))


def test_bundled_class_lists_have_the_published_sizes():
    assert {k: len(class_names(k)) for k in KEYS} == COUNTS


@pytest.mark.parametrize("key", KEYS)
def test_loader_reads_all_classes_in_coop_label_order(key, data):
    root, derived = data
    ds = load(key, root)
    assert derived[key] == class_names(key)  # fixture's CoOp-rule order == bundled order
    assert ds.classnames == class_names(key)
    n = COUNTS[key]
    assert ds.num_classes == n and len(ds.train_x) == 2 * n and len(ds.test) == n
    assert len(ds.val) == n
    if key == "imagenet":
        assert ds.val is ds.test  # CoOp: val is the test set
    assert all(d.classname == class_names(key)[d.label] for d in ds.train_x + ds.test)


@pytest.mark.parametrize("key", KEYS)
def test_base_and_new_halves(key, data):
    root, _ = data
    names = class_names(key)
    m = -(-len(names) // 2)
    base = load(key, root, subsample="base", shots=1)
    new = load(key, root, subsample="new", shots=1)
    assert base.classnames == names[:m] and new.classnames == names[m:]
    assert {d.label for d in new.test} == set(range(len(names) - m))
    assert len(base.train_x) == m  # one shot per class


@pytest.mark.parametrize("key,halves", [("oxford_pets", (19, 18)), ("dtd", (24, 23)),
                                        ("sun397", (199, 198)), ("oxford_flowers", (51, 51)),
                                        ("imagenet", (500, 500)), ("eurosat", (5, 5))])
def test_published_half_sizes(key, halves, data):
    root, _ = data
    assert (load(key, root, subsample="base").num_classes,
            load(key, root, subsample="new").num_classes) == halves


@pytest.mark.parametrize("key", ["imagenet", "fgvc_aircraft", "dtd"])
def test_few_shot_is_deterministic_per_seed_and_cached(key, data):
    root, _ = data
    a = [d.impath for d in load(key, root, shots=1, seed=3).train_x]
    b = [d.impath for d in load(key, root, shots=1, seed=3).train_x]  # from the cache
    c = [d.impath for d in load(key, root, shots=1, seed=4).train_x]
    assert a == b and a != c and len(a) == COUNTS[key]


def test_imagenet_labels_follow_sorted_folders_not_file_order(data):
    root, _ = data
    lines = (root / "imagenet" / "classnames.txt").read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines] != class_names("imagenet")  # shuffled
    ds = load("imagenet", root)
    first = [d for d in ds.train_x if d.label == 0][0]
    assert f"/train/{imagenet_wnids()[0]}/" in first.impath
    assert ds.classnames[0] == "tench"


def test_cache_key_follows_the_source_files(tmp_path):
    """FGVCAircraft's records come from text files: editing one re-keys the cache."""
    write_dataset("fgvc_aircraft", tmp_path)
    load("fgvc_aircraft", tmp_path, shots=1)
    cache = tmp_path / "fgvc_aircraft" / "split_fewshot"
    first = {p.name for p in cache.glob("shot_1-seed_1-*.json")}
    train_list = tmp_path / "fgvc_aircraft" / "images_variant_train.txt"
    lines = train_list.read_text().splitlines()
    train_list.write_text("\n".join(lines[1:]) + "\n")  # one training image fewer
    load("fgvc_aircraft", tmp_path, shots=1)
    second = {p.name for p in cache.glob("shot_1-seed_1-*.json")}
    assert len(first) == 1 and len(second) == 2
    payload = json.loads((cache / first.pop()).read_text())
    assert "images_variant_train.txt" in payload["sources"]
    assert all(not e[0].startswith("/") for e in payload["train"])


@pytest.mark.parametrize("key", KEYS)
def test_dataset_config_names_a_registered_loader(key):
    import yaml
    from dassl.data.datasets import DATASET_REGISTRY

    from sar_prompt.catalog import by_key

    config = Path(__file__).resolve().parents[1] / "configs" / "datasets" / f"{key}.yaml"
    name = yaml.safe_load(config.read_text())["DATASET"]["NAME"]
    assert name == by_key(key).name and name in DATASET_REGISTRY.registered_names()


def test_build_dataset_through_dassl(data):
    """Dassl's own entry point finds and builds a loader by its config name."""
    from dassl.data.datasets import build_dataset

    root, _ = data
    ds = build_dataset(_dassl_cfg(root))
    assert ds.classnames == class_names("dtd")[:24]


def _dassl_cfg(root):
    from dassl.config import get_cfg_default

    from sar_prompt import extend_cfg

    c = get_cfg_default()
    extend_cfg(c)
    c.DATASET.NAME = "DescribableTextures"
    c.DATASET.ROOT = str(root)
    c.DATASET.NUM_SHOTS = 2
    c.DATASET.SUBSAMPLE_CLASSES = "base"
    c.SEED = 1
    return c
