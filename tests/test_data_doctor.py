"""The data doctor and the checks training runs first: each broken layout gets a message
that names the path and the fix, and training stops with it (DataError) before any epoch."""
import json
import shutil
import subprocess
import sys
import types

import pytest

from fixtures import write_dataset
from sar_prompt.data import images
from sar_prompt.data.doctor import check
from sar_prompt.errors import DataError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    for key in ("dtd", "eurosat"):
        write_dataset(key, root)
    return root


@pytest.fixture
def root(pristine, tmp_path):
    """A copy of DTD and EuroSAT that a test may break."""
    shutil.copytree(pristine, tmp_path / "data")
    return tmp_path / "data"


def load(key, root, shots=-1, subsample="all"):
    from sar_prompt.datasets import by_key

    return by_key(key)(types.SimpleNamespace(SEED=1, DATASET=types.SimpleNamespace(
        ROOT=str(root), NUM_SHOTS=shots, SUBSAMPLE_CLASSES=subsample)))


def messages(report):
    return "\n".join(str(p) for p in report.problems)


def test_healthy_dataset_counts_per_split_and_half(root):
    report = check("dtd", root, shots=1)
    assert report.ok and not report.problems, messages(report)
    counts = {(s, h): (n, c) for s, h, n, c in report.counts}
    assert counts[("train", "base")] == (48, 24) and counts[("test", "new")] == (23, 23)
    assert report.images_checked == 47 * 4
    assert "OK: ready for training" in report.render()


def test_wrong_root(tmp_path):
    report = check("dtd", tmp_path / "nowhere")
    assert not report.ok and "DATASET.ROOT" in messages(report) and "--data" in messages(report)
    report = check("dtd", tmp_path)  # exists, but holds no dtd/
    assert f"{tmp_path / 'dtd'} is missing" in messages(report)
    assert "sar-prompt data download dtd" in messages(report)


def test_root_pointing_inside_the_dataset(root):
    report = check("dtd", root / "dtd")
    assert "points inside the dataset folder" in messages(report)
    assert f"--data {root}" in messages(report)


def test_dataset_folder_under_another_name(root):
    (root / "dtd").rename(root / "DTD")
    assert f"rename it to dtd" in messages(check("dtd", root))


def test_archive_left_one_level_too_deep(root):
    (root / "eurosat").rename(root / "nested")
    (root / "eurosat").mkdir()
    (root / "nested").rename(root / "eurosat" / "EuroSAT")
    text = messages(check("eurosat", root))
    assert f"{root / 'eurosat' / 'EuroSAT' / '2750'} looks like it: move it to " \
           f"{root / 'eurosat' / '2750'}" in text


def test_flat_imagenet_val(tmp_path):
    write_dataset("imagenet", tmp_path, (1, 0, 1), flat_val=True)
    report = check("imagenet", tmp_path)
    assert "images/val is flat: 1000 image(s) and no class folders" in messages(report)
    with pytest.raises(DataError, match="is flat"):
        load("imagenet", tmp_path)


def test_split_file_that_is_a_web_page(root):
    split = root / "dtd" / "split_zhou_DescribableTextures.json"
    split.write_text("<!DOCTYPE html><html>Google Drive - Virus scan warning</html>")
    report = check("dtd", root)
    assert "not valid JSON" in messages(report) and "web page" in messages(report)
    with pytest.raises(DataError, match="split_zhou_DescribableTextures.json is not valid JSON"):
        load("dtd", root)


def test_split_naming_missing_images(root):
    (root / "eurosat" / "2750" / "Forest" / "Forest_20.jpg").unlink()  # Forest's test image
    shutil.rmtree(root / "eurosat" / "2750" / "River")
    report = check("eurosat", root)
    text = messages(report)
    assert "lists 2 train image(s)" in text and "lists 2 test image(s)" in text
    assert "Forest/Forest_20.jpg" in text and "River/River_" in text
    with pytest.raises(DataError, match="re-extract the images"):
        load("eurosat", root, subsample="base")


def test_unreadable_and_truncated_images(root):
    folder = root / "dtd" / "images"
    good = (folder / "banded" / "banded_00.jpg").read_bytes()
    (folder / "banded" / "banded_00.jpg").write_bytes(good[:-4])  # an interrupted copy
    (folder / "cracked" / "cracked_20.jpg").write_bytes(b"<html>quota exceeded</html>")
    (folder / "dotted" / "dotted_10.jpg").write_bytes(b"")
    text = messages(check("dtd", root))
    assert "3 image file(s) are unreadable or truncated" in text
    assert "banded_00.jpg (truncated" in text and "cracked_20.jpg (not an image but a web page" in text
    assert "dotted_10.jpg (empty file)" in text
    with pytest.raises(DataError, match="banded_00.jpg \\(truncated"):
        load("dtd", root, subsample="base")  # a base-class training image
    load("dtd", root, shots=1, subsample="new")  # new classes are intact: that run may go on


def test_deep_check_decodes(root):
    """A PNG cut in the middle of its pixel data, its end chunk put back: the header and
    end marker look right, only decoding finds it broken."""
    import io
    import random

    from PIL import Image

    rng = random.Random(0)
    im = Image.new("RGB", (64, 64))
    im.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64 * 64)])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    path = root / "dtd" / "images" / "dotted" / "dotted_00.jpg"
    path.write_bytes(data[:len(data) // 2] + data[-12:])
    assert images.check_image(str(path)) is None  # the fast check cannot see this one
    assert "unreadable" in images.check_image(str(path), deep=True)
    assert check("dtd", root).ok and not check("dtd", root, deep=True).ok


def test_verified_memo_skips_unchanged_sets_only(root, monkeypatch):
    paths = sorted(str(p) for p in (root / "eurosat" / "2750").rglob("*.jpg"))
    memo = root / "memo.json"
    assert images.verify(paths, memo_path=memo) == [] and memo.is_file()
    opened = []
    monkeypatch.setattr(images, "check_image", lambda p, deep=False: opened.append(p))
    assert images.verify(paths, memo_path=memo) == [] and opened == []  # remembered
    with open(paths[0], "ab") as f:
        f.write(b"\0")  # changed since: checked again
    images.verify(paths, memo_path=memo)
    assert len(opened) == len(paths)


def test_more_shots_than_a_class_has(root, capsys):
    """CoOp silently takes every image of a short class; we do too, but say so."""
    report = check("eurosat", root, shots=16)
    assert report.ok
    text = messages(report)
    assert "NUM_SHOTS=16: 10 class(es) have fewer than 16 train images" in text
    assert "Lower DATASET.NUM_SHOTS to 2" in text and "split_zhou_EuroSAT.json" in text
    ds = load("eurosat", root, shots=16, subsample="base")
    assert len(ds.train_x) == 5 * 2
    assert "warning: NUM_SHOTS=16" in capsys.readouterr().out


def test_split_labels_that_disagree(root):
    split = root / "dtd" / "split_zhou_DescribableTextures.json"
    data = json.loads(split.read_text())
    data["test"][0][2] = "stripy"
    split.write_text(json.dumps(data))
    with pytest.raises(DataError, match="label 0 is both 'banded' and 'stripy'"):
        load("dtd", root)


def test_classes_that_differ_from_the_bundled_list_warn(root):
    split = root / "dtd" / "split_zhou_DescribableTextures.json"
    data = json.loads(split.read_text())
    for part in data.values():
        for e in part:
            e[2] = e[2].replace("banded", "stripy")
    split.write_text(json.dumps(data))
    report = check("dtd", root)
    assert report.ok and "label 0 is 'stripy', expected 'banded'" in messages(report)


def test_cli_exit_codes_and_output(root, capsys):
    from sar_prompt.data.__main__ import main

    ok = subprocess.run([sys.executable, "-m", "sar_prompt.data", "check", "DescribableTextures",
                         "--root", str(root), "--shots", "1"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "OK: ready for training" in ok.stdout and "train  base        48       24" in ok.stdout
    (root / "dtd" / "split_zhou_DescribableTextures.json").unlink()
    assert main(["check", "dtd", "--root", str(root)]) == 2  # a broken dataset
    assert "split_zhou_DescribableTextures.json is missing" in capsys.readouterr().out
    assert main(["check", "dtdx", "--root", str(root)]) == 2
    assert "use one of: imagenet" in capsys.readouterr().err
