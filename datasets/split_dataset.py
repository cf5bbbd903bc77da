"""The Dassl side of every dataset: `SplitDataset` loads a dataset through its
`sar_prompt.data` files description (layout, records, checks, few-shot cache), keeps the
base or new half of the classes exactly as the CoOp family does (so a seed picks the same
images as CoOp's loaders), and hands Dassl its Datums. It stops with a DataError that names
the path and the fix rather than failing mid-epoch; `sar-prompt data check` runs
the same checks without Dassl and lists them all.
"""
from dassl.data.datasets import DatasetBase, Datum

from sar_prompt.config import check_num_shots
from sar_prompt.data.files import DatasetFiles
from sar_prompt.data.splits import (Record, class_halves, records_digest,  # noqa: F401
                                    sample_few_shot, subsample_classes)


class SplitDataset(DatasetBase):
    """Subclasses set `files_class`, the dataset's `DatasetFiles` (sar_prompt/data/layouts.py)."""

    files_class = DatasetFiles
    fewshot_sha256 = None  # digest of the few-shot sample used (see records_digest)

    def __init__(self, cfg):
        self.files = files = self.files_class(cfg.DATASET.ROOT)
        train, val, test = files.load_records()
        num_shots = cfg.DATASET.NUM_SHOTS
        check_num_shots(num_shots)  # below 1 would silently mean every image
        if num_shots >= 1 and not files.test_only:
            train, val = files.few_shot(train, val, num_shots, cfg.SEED)
            self.fewshot_sha256 = records_digest(train, val)
        train, val, test = subsample_classes(train, val, test,
                                             subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        files.verify_images(train, val, test)
        test_datums = self.to_datums(test)
        val_datums = test_datums if files.val_is_test else self.to_datums(val)
        super().__init__(train_x=self.to_datums(train), val=val_datums, test=test_datums)

    # what a run's fingerprint records about its data (sar_prompt.runs.fingerprint)
    source_names = property(lambda self: self.files.source_names)
    source_hash = property(lambda self: self.files.source_hash)
    fewshot_file = property(lambda self: self.files.fewshot_file)

    def to_datums(self, records):
        image_path = self.files.image_path
        return [Datum(impath=str(image_path / r.relpath), label=r.label, classname=r.classname)
                for r in records]
