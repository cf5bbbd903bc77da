"""FGVCAircraft as the CoOp family reads it: the dataset's own files, not a split JSON.
variants.txt lists the 100 variants (label order); images_variant_{train,val,test}.txt
hold '<image id> <variant>' lines for images/<image id>.jpg."""
from .base import Record, SplitDataset, SPLITS
from ..errors import DataError


class FGVCAircraft(SplitDataset):
    dataset_dir = "fgvc_aircraft"
    image_dir = "images"
    split_file = "variants.txt"
    split_source = "docs/datasets.md (the official archive's data/ folder)"

    def split_lists(self):
        return [self.dataset_path / f"images_variant_{s}.txt" for s in SPLITS]

    def layout(self):
        fix = ("It comes with the official archive (fgvc-aircraft-2013b/data/): "
               + self.how_to_get())
        return [(self.image_path, "dir", fix), (self.split_path, "file", fix)] + \
            [(p, "file", fix) for p in self.split_lists()]

    def read_records(self):
        classnames = [c.strip() for c in self.read_source(self.split_path).splitlines()
                      if c.strip()]
        label_of = {c: i for i, c in enumerate(classnames)}
        out = []
        for path in self.split_lists():
            records = []
            for n, line in enumerate(self.read_source(path).splitlines(), 1):
                image_id, _, variant = line.strip().partition(" ")
                if not image_id:
                    continue
                if variant not in label_of:
                    raise DataError(f"{path}, line {n}: variant {variant!r} is not in "
                                    f"{self.split_path}. Re-extract both from the official "
                                    "archive.")
                records.append(Record(f"{image_id}.jpg", label_of[variant], variant))
            out.append(records)
        return out
