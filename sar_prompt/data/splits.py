"""Split records and the CoOp family's sampling rules, shared by the loaders and the doctor:
few-shot sampling as Dassl's `generate_fewshot_dataset` does it, and the base/new halves."""
import hashlib
import json
import math
import os
from collections import OrderedDict

from sar_prompt.errors import DataError

SUBSAMPLES = ("all", "base", "new")
SPLITS = ("train", "val", "test")


class Record(tuple):
    """(relpath, label, classname): one split entry, cheap to sample before building Datums."""
    __slots__ = ()

    def __new__(cls, relpath, label, classname):
        return super().__new__(cls, (relpath, int(label), classname))

    relpath = property(lambda self: self[0])
    label = property(lambda self: self[1])
    classname = property(lambda self: self[2])


def group_by_label(records):
    """{label: [records]} in order of first appearance, as Dassl's split_dataset_by_label."""
    groups = OrderedDict()
    for r in records:
        groups.setdefault(r.label, []).append(r)
    return groups


def sample_few_shot(records, num_shots, rng):
    """CoOp family's few-shot sampling (Dassl's generate_fewshot_dataset): group by label in
    order of first appearance; per label take rng.sample(items, num_shots), or every item
    when a class has fewer. With rng = random.Random(seed) this picks what CoOp picks right
    after set_random_seed(seed)."""
    out = []
    for items in group_by_label(records).values():
        out.extend(rng.sample(items, num_shots) if len(items) >= num_shots else items)
    return out


def records_digest(*splits):
    """sha256 of the records of `splits` (relpath, label, class name), in order: two runs with
    the same digest trained on the same images."""
    return hashlib.sha256(json.dumps([[list(r) for r in split] for split in splits],
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def class_halves(records):
    """(base labels, new labels): the first ceil(n/2) sorted labels and the rest."""
    labels = sorted({r.label for r in records})
    m = math.ceil(len(labels) / 2)
    return labels[:m], labels[m:]


def subsample_classes(*splits, subsample="all"):
    """Keep the base (first ceil(n/2) sorted labels of the first split) or new (the rest)
    classes, relabelled from 0, as the CoOp family does."""
    if subsample not in SUBSAMPLES:
        raise DataError(f"DATASET.SUBSAMPLE_CLASSES is {subsample!r}; use all, base or new.")
    if subsample == "all":
        return splits
    base, new = class_halves(splits[0])
    selected = base if subsample == "base" else new
    relabel = {y: i for i, y in enumerate(selected)}
    return tuple([Record(r.relpath, relabel[r.label], r.classname) for r in split
                  if r.label in relabel] for split in splits)


def listdir_files(folder):
    """Non-hidden files of a folder, sorted (CoOp lists them in filesystem order, which
    differs between machines; sorting makes a seed pick the same images everywhere)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
