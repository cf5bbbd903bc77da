"""ImageNet's test-only variants (domain generalisation) on fixtures in the CoOp family's
layout: class subsets and label order, no few-shot sampling, the data doctor and the
download recipes (served on 127.0.0.1)."""
import shutil
import types

import pytest

from fixtures import imagenet_subset_labels, imagenet_wnids, write_dataset
from sar_prompt.catalog import DOMAIN_SHIFT
from sar_prompt.classnames import class_names
from sar_prompt.data import download as dl
from sar_prompt.data.doctor import check
from sar_prompt.errors import DataError
from test_data_download import mirror, publish, tar_gz  # noqa: F401  (mirror is a fixture)

KEYS = [d.key for d in DOMAIN_SHIFT]
COUNTS = {"imagenetv2": 1000, "imagenet_sketch": 1000, "imagenet_a": 200, "imagenet_r": 200}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dg")
    return root, {key: write_dataset(key, root) for key in KEYS}


def load(key, root, shots=-1, seed=1):
    from sar_prompt.datasets import by_key

    cfg = types.SimpleNamespace(SEED=seed, DATASET=types.SimpleNamespace(
        ROOT=str(root), NUM_SHOTS=shots, SUBSAMPLE_CLASSES="all"))
    return by_key(key)(cfg)


def test_subsets_are_200_imagenet_classes_in_imagenet_order():
    for key in ("imagenet_a", "imagenet_r"):
        labels = imagenet_subset_labels(key)
        assert len(labels) == 200 == len(set(labels)) and labels == sorted(labels)
        assert class_names(key) == [class_names("imagenet")[k] for k in labels]
    assert imagenet_subset_labels("imagenet_a")[:3] == [6, 11, 13]  # stingray, goldfinch, junco
    assert imagenet_subset_labels("imagenet_r")[:3] == [1, 2, 4]    # goldfish, great white shark


@pytest.mark.parametrize("key", KEYS)
def test_variant_loads_its_classes_as_a_test_set(key, data):
    root, derived = data
    ds = load(key, root, shots=16)  # NUM_SHOTS does not sample a test-only set
    expected = class_names("imagenet") if COUNTS[key] == 1000 else class_names(key)
    assert derived[key] == expected and ds.classnames == expected
    assert ds.num_classes == COUNTS[key] and len(ds.test) == COUNTS[key]
    assert [d.impath for d in ds.train_x] == [d.impath for d in ds.test] and ds.val is ds.test
    assert all(d.classname == expected[d.label] for d in ds.test)
    assert ds.fewshot_file is None and not list(root.rglob("split_fewshot/shot_*"))


def test_imagenetv2_folder_number_is_the_imagenet_label(data):
    """classnames.txt is shuffled in the fixture: folder i must still be the i-th wnid."""
    root, _ = data
    ds = load("imagenetv2", root)
    for d in ds.test[:: 97]:
        folder = int(d.impath.split("/")[-2])
        assert d.label == folder and d.classname == class_names("imagenet")[folder]


def test_unknown_class_folder_names_the_fix(tmp_path):
    write_dataset("imagenet_a", tmp_path)
    (tmp_path / "imagenet-adversarial" / "imagenet-a" / "n99999999").mkdir()
    with pytest.raises(DataError, match=r"n99999999.*classnames.txt"):
        load("imagenet_a", tmp_path)


@pytest.mark.parametrize("key", KEYS)
def test_doctor_counts_only_the_test_set(key, data):
    root, _ = data
    report = check(key, root)
    assert report.ok and not report.problems, report.render()
    assert [c[0] for c in report.counts] == ["test"] * 3
    assert report.counts[0][2:] == (COUNTS[key], COUNTS[key])


def test_doctor_names_the_missing_classnames_file(tmp_path):
    write_dataset("imagenet_r", tmp_path)
    (tmp_path / "imagenet-rendition" / "classnames.txt").unlink()
    report = check("imagenet_r", tmp_path)
    assert not report.ok and "cp $DATA/imagenet/classnames.txt" in report.render()


def test_doctor_warns_when_a_subset_misses_classes(tmp_path):
    write_dataset("imagenet_a", tmp_path)
    shutil.rmtree(tmp_path / "imagenet-adversarial" / "imagenet-a" / imagenet_wnids()[6])
    report = check("imagenet_a", tmp_path)
    assert report.ok and "199 classes vs 200" in report.render()


def test_download_unpacks_the_archive_and_copies_imagenets_classnames(
        mirror, monkeypatch, tmp_path):  # noqa: F811
    stage, root = tmp_path / "stage", tmp_path / "data"
    write_dataset("imagenet_r", stage)
    publish(mirror, monkeypatch, "imagenet_r",
            {"imagenet-r.tar": tar_gz(stage / "imagenet-rendition" / "imagenet-r", "imagenet-r")},
            stage)
    (root / "imagenet").mkdir(parents=True)
    shutil.copy(stage / "imagenet-rendition" / "classnames.txt", root / "imagenet")
    log = []
    assert dl.download("imagenet_r", root, mirror=mirror.url, log=log.append) == 0
    assert any("copying" in line for line in log)
    assert [p for p, _ in mirror.requests] == ["/imagenet_r/imagenet-r.tar"]  # no classnames fetch
    assert load("imagenet_r", root).classnames == class_names("imagenet_r")


def test_sketch_download_prints_its_manual_steps(tmp_path):
    (tmp_path / "imagenet").mkdir()
    (tmp_path / "imagenet" / "classnames.txt").write_text("n01440764 tench\n")
    log = []
    assert dl.download("imagenet_sketch", tmp_path, log=log.append) == 1
    text = "\n".join(log)
    assert "manual steps remain" in text and "sketch/" in text
    assert (tmp_path / "imagenet-sketch" / "classnames.txt").is_file()
