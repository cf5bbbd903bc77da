"""One base for every dataset stored in the CoOp family's layout:

    <DATASET.ROOT>/<dataset_dir>/<image_dir>/...        images
    <DATASET.ROOT>/<dataset_dir>/<split_file>           {"train"|"val"|"test": [[relpath, label, classname], ...]}
    <DATASET.ROOT>/<dataset_dir>/split_fewshot/         few-shot samples, cached per (shots, seed, split)

A dataset module only says where its files are. This base reads the split, samples the
few-shot training set (16 shots: train; min(shots, 4): val) and keeps the base or new half
of the classes, exactly as the CoOp family does (so a seed picks the same images as
CoOp's loaders do), and checks the layout first, with errors that say what to fix.
"""
import hashlib
import json
import math
import random
from collections import OrderedDict
from pathlib import Path

from dassl.data.datasets import DatasetBase, Datum

from ..errors import DataError
from ..io import atomic_write_json

FEWSHOT_CACHE_VERSION = 1
SUBSAMPLES = ("all", "base", "new")


class Record(tuple):
    """(relpath, label, classname): one split entry, cheap to sample before building Datums."""
    __slots__ = ()

    def __new__(cls, relpath, label, classname):
        return super().__new__(cls, (relpath, int(label), classname))

    relpath = property(lambda self: self[0])
    label = property(lambda self: self[1])
    classname = property(lambda self: self[2])


def sample_few_shot(records, num_shots, rng):
    """CoOp family's few-shot sampling (Dassl's generate_fewshot_dataset): group by label in
    order of first appearance; per label take rng.sample(items, num_shots), or every item
    when a class has fewer. With rng = random.Random(seed) this picks what CoOp picks right
    after set_random_seed(seed)."""
    groups = OrderedDict()
    for r in records:
        groups.setdefault(r.label, []).append(r)
    out = []
    for items in groups.values():
        out.extend(rng.sample(items, num_shots) if len(items) >= num_shots else items)
    return out


def subsample_classes(*splits, subsample="all"):
    """Keep the base (first ceil(n/2) sorted labels of the first split) or new (the rest)
    classes, relabelled from 0, as the CoOp family does."""
    if subsample not in SUBSAMPLES:
        raise DataError(f"DATASET.SUBSAMPLE_CLASSES is {subsample!r}; use all, base or new.")
    if subsample == "all":
        return splits
    labels = sorted({r.label for r in splits[0]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabel = {y: i for i, y in enumerate(selected)}
    return tuple([Record(r.relpath, relabel[r.label], r.classname) for r in split
                  if r.label in relabel] for split in splits)


class SplitDataset(DatasetBase):
    """Subclasses set `dataset_dir`, `image_dir` (relative to it) and `split_file`."""

    dataset_dir = ""
    image_dir = ""
    split_file = ""
    split_source = "the CoOp repository's DATASETS.md"  # where users get the split file

    def __init__(self, cfg):
        self.root = Path(cfg.DATASET.ROOT).expanduser().resolve()
        self.dataset_path = self.root / self.dataset_dir
        self.image_path = self.dataset_path / self.image_dir
        self.split_path = self.dataset_path / self.split_file
        self.check_layout()
        train, val, test = self.read_split()
        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            train, val = self.few_shot(train, val, num_shots, cfg.SEED)
        train, val, test = subsample_classes(train, val, test,
                                             subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        train, val, test = (self.to_datums(s, name) for s, name in
                            ((train, "train"), (val, "val"), (test, "test")))
        super().__init__(train_x=train, val=val, test=test)

    # -- layout and split --------------------------------------------------------------
    def check_layout(self):
        name = type(self).__name__
        if not self.root.is_dir():
            raise DataError(f"DATASET.ROOT ({self.root}) is not a folder. Pass --root (or set "
                            f"DATA for scripts/base2new.sh) to the folder that holds "
                            f"{self.dataset_dir}/.")
        if not self.dataset_path.is_dir():
            raise DataError(f"{name}: {self.dataset_path} is missing. Put the dataset there "
                            f"(see {self.split_source}), or fix DATASET.ROOT.")
        if not self.image_path.is_dir():
            raise DataError(f"{name}: image folder {self.image_path} is missing; the "
                            f"dataset's images belong there.")
        if not self.split_path.is_file():
            raise DataError(f"{name}: split file {self.split_path} is missing. Download "
                            f"{self.split_file} (see {self.split_source}) into "
                            f"{self.dataset_path}.")

    def read_split(self):
        where = str(self.split_path)
        try:
            raw = self.split_path.read_bytes()
            split = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where} is not valid JSON ({exc.msg}, line {exc.lineno}). "
                            f"Download {self.split_file} again.") from exc
        self.split_hash = hashlib.sha256(raw).hexdigest()
        out = []
        for key in ("train", "val", "test"):
            entries = split.get(key) if isinstance(split, dict) else None
            if not isinstance(entries, list):
                raise DataError(f"{where}: no {key!r} list. A split file is "
                                '{"train"|"val"|"test": [[relpath, label, classname], ...]}.')
            records = []
            for i, e in enumerate(entries):
                if not (isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
                        and isinstance(e[1], int) and isinstance(e[2], str)):
                    raise DataError(f"{where}: {key}[{i}] is {e!r}; expected "
                                    "[relpath, integer label, classname].")
                records.append(Record(*e))
            out.append(records)
        return out

    def to_datums(self, records, split_name):
        missing = [r.relpath for r in records if not (self.image_path / r.relpath).is_file()]
        if missing:
            shown = ", ".join(missing[:3])
            raise DataError(f"{self.split_path} lists {len(missing)} {split_name} image(s) that "
                            f"are not under {self.image_path} (e.g. {shown}). Re-download or "
                            "re-extract the images, or use the split file that matches them.")
        return [Datum(impath=str(self.image_path / r.relpath), label=r.label,
                      classname=r.classname) for r in records]

    # -- few-shot sampling and its cache -----------------------------------------------
    def few_shot(self, train, val, num_shots, seed):
        cache = (self.dataset_path / "split_fewshot" /
                 f"shot_{num_shots}-seed_{seed}-{self.split_hash[:12]}.json")
        if seed >= 0 and cache.is_file():
            try:
                data = json.loads(cache.read_text())
                if data.get("version") == FEWSHOT_CACHE_VERSION:
                    print(f"[sar_prompt] few-shot samples from {cache}")
                    return ([Record(*e) for e in data["train"]],
                            [Record(*e) for e in data["val"]])
            except (json.JSONDecodeError, KeyError, TypeError):
                print(f"[sar_prompt] ignoring unreadable few-shot cache {cache}")
        rng = random.Random(seed) if seed >= 0 else random.Random()
        train = sample_few_shot(train, num_shots, rng)
        val = sample_few_shot(val, min(num_shots, 4), rng)
        if seed >= 0:
            payload = {"version": FEWSHOT_CACHE_VERSION, "split_file": self.split_file,
                       "split_sha256": self.split_hash, "num_shots": num_shots, "seed": seed,
                       "train": [list(r) for r in train], "val": [list(r) for r in val]}
            try:
                atomic_write_json(cache, payload, indent=None)
                print(f"[sar_prompt] few-shot samples saved to {cache}")
            except OSError as exc:  # a read-only data folder is fine: just no cache
                print(f"[sar_prompt] cannot cache few-shot samples at {cache} ({exc})")
        return train, val
