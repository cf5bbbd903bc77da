"""The data doctor: everything training would check, and more, listed at once.

It runs the loader's own checks (layout, the records and their labels, every file the
split names, the images) on the whole dataset rather than the part one run uses, prints
counts per split and per base/new half, and warns where NUM_SHOTS exceeds what a class has.
"""
from pathlib import Path

from sar_prompt.errors import DataError
from sar_prompt.data.layouts import files_for
from sar_prompt.data.splits import SPLITS, class_halves
from sar_prompt.data.report import Report, error


def check(name, root, deep=False, shots=16):
    """A Report on dataset `name` (a catalog key or registry name) under `root`."""
    ds = files_for(name)(root)
    report = Report(dataset=f"{ds.name} ({ds.catalog_key})", root=str(ds.root), deep=deep)
    report.problems += ds.layout_problems()
    if not report.ok:
        return report
    try:
        train, val, test = ds.read_records()
    except DataError as exc:
        report.problems.append(error(str(exc)))
        return report
    splits = dict(zip(SPLITS, (train, val, test)))
    outside = ds.path_problems(train, val, test)
    if outside:  # never look at files outside the dataset folder
        report.problems += outside
        return report
    report.problems += ds.record_problems(train, val, test)
    report.problems += ds.missing_problems(train, val, test)
    base, new = (set(h) for h in class_halves(train))
    for split_name, records in splits.items():
        if (split_name == "val" and ds.val_is_test) or (ds.test_only and split_name != "test"):
            continue
        for half, labels in (("all", None), ("base", base), ("new", new)):
            kept = [r for r in records if labels is None or r.label in labels]
            report.counts.append((split_name, half, len(kept), len({r.label for r in kept})))
    if shots >= 1 and not ds.test_only:
        report.problems += ds.shortfall_problems(train, val, shots)
    present = {str(ds.image_path / r.relpath) for records in splits.values() for r in records}
    present = [p for p in present if Path(p).is_file()]
    report.problems += ds.image_problems(present, deep=deep)
    report.images_checked = len(present)
    return report
