"""A dataset's files in the CoOp family's layout, without Dassl:

    <root>/<dataset_dir>/<image_dir>/...        images
    <root>/<dataset_dir>/<split_file>           {"train"|"val"|"test": [[relpath, label, classname], ...]}
    <root>/<dataset_dir>/split_fewshot/         few-shot samples, cached per (shots, seed, sources)

`DatasetFiles` checks the layout, reads the records (through `read_source`, so the few-shot
cache is keyed by a hash of exactly the files they come from), checks their labels against
the bundled class lists, samples and caches the few-shot training set, and verifies the
images, each check returning problems that name the path and the fix. The Dassl datasets
(`sar_prompt.datasets`) load through it and stop on the first errors; the data doctor
(`sar-prompt data check`) runs the same checks on everything and lists them all.
Per-dataset subclasses are in `layouts.py`.
"""
import hashlib
import json
import random
from pathlib import Path, PurePosixPath, PureWindowsPath

from sar_prompt.catalog import by_name
from sar_prompt.classnames import class_names
from sar_prompt.errors import DataError
from sar_prompt.io import DuplicateKeyError, atomic_write_json, loads_json
from sar_prompt.data import images as image_check
from sar_prompt.data.layout import missing_entry, root_problems
from sar_prompt.data.splits import SPLITS, Record, group_by_label, sample_few_shot
from sar_prompt.data.report import error, examples, raise_errors, warning

FEWSHOT_CACHE_VERSION = 2
VERIFIED_MEMO = "verified-images.json"


class DatasetFiles:
    """Where one dataset's files are under a data root, and how to read and check them.
    Subclasses set `name` (the Dassl registry name), `dataset_dir`, `image_dir` (relative
    to it; "" for the dataset folder itself) and `split_file`; those whose records come from
    elsewhere override `read_records` (and `layout` for the files it needs)."""

    name = ""
    dataset_dir = ""
    image_dir = ""
    split_file = ""
    split_source = "docs/datasets.md"  # where users learn how to get the split file
    val_is_test = False       # ImageNet: the val set is the test set, few-shot samples train only
    test_only = False         # ImageNet's variants: every split is the test set, no few-shot
    records_are_listed = False  # records come from listing image folders: they exist
    classlist = ""            # key of the bundled class list to compare with; "" = catalog_key
    fewshot_file = None       # the few-shot cache file read or written, if any

    def __init__(self, root):
        self.locate(root)

    def locate(self, root):
        self.root = Path(root).expanduser().resolve()
        self.dataset_path = self.root / self.dataset_dir
        self.image_path = self.dataset_path / self.image_dir
        self.split_path = self.dataset_path / self.split_file
        self._sources = hashlib.sha256()
        self.source_names = []

    @property
    def catalog_key(self):
        info = by_name(self.name)
        return info.key if info else self.name.lower()

    # -- layout ------------------------------------------------------------------------
    def how_to_get(self):
        return (f"Download it with `sar-prompt data download {self.catalog_key} "
                f"--data {self.root}` or by hand (see {self.split_source}).")

    def layout(self):
        """[(path, "dir" | "file", fix)]: what must exist before records can be read."""
        entries = []
        if self.image_path != self.dataset_path:
            entries.append((self.image_path, "dir", "The dataset's images belong there: "
                            + self.how_to_get()))
        entries.append((self.split_path, "file", f"Download {self.split_file} (see "
                        f"{self.split_source}) into {self.dataset_path}: " + self.how_to_get()))
        return entries

    def layout_problems(self):
        """Errors in DATASET.ROOT and the dataset folder's layout ([] when all is in place)."""
        entries = self.layout()
        rels = [p.relative_to(self.dataset_path) for p, _, _ in entries]
        problems = root_problems(self.root, self.dataset_path, rels, self.how_to_get())
        if problems:
            return problems
        for path, kind, fix in entries:
            if not (path.is_dir() if kind == "dir" else path.is_file()):
                problems.append(missing_entry(path, kind, self.dataset_path, fix))
        return problems

    def check_layout(self):
        raise_errors(self.layout_problems())

    # -- records -----------------------------------------------------------------------
    def read_source(self, path):
        """Text of a file the records come from; its bytes key the few-shot cache."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {path} ({exc.strerror}). " + self.how_to_get()) from exc
        name = str(path.relative_to(self.dataset_path))
        self._sources.update(f"{name}\0{len(raw)}\0".encode() + raw)
        self.source_names.append(name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path} is not a text file (byte {exc.start} is not UTF-8). "
                            + self.how_to_get()) from exc

    def fingerprint(self, name, text):
        """Add something other than a file (a folder listing) to what keys the cache."""
        data = text.encode("utf-8")
        self._sources.update(f"{name}\0{len(data)}\0".encode() + data)
        self.source_names.append(name)

    @property
    def source_hash(self):
        return self._sources.hexdigest()

    def read_records(self):
        """(train, val, test) lists of Records. Default: the split JSON."""
        where = self.split_path
        text = self.read_source(where)
        try:
            split = loads_json(text, str(where))
        except DuplicateKeyError as exc:
            raise DataError(f"{exc} Download {self.split_file} again: "
                            + self.how_to_get()) from None
        except json.JSONDecodeError as exc:
            page = " It is a web page, not the split: a failed download (Google Drive " \
                   "often serves a warning page)." if text.lstrip()[:1] == "<" else ""
            raise DataError(f"{where} is not valid JSON ({exc.msg}, line {exc.lineno}).{page} "
                            f"Download {self.split_file} again: " + self.how_to_get()) from exc
        out = []
        for key in SPLITS:
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

    def path_problems(self, train, val, test):
        """Errors for entries that point outside the dataset's image folder (an absolute
        path, or `..`): a split file names images of this dataset only."""
        where = ", ".join(self.source_names) or str(self.split_path)
        problems = []
        for split_name, records in zip(SPLITS, (train, val, test)):
            for i, r in enumerate(records):
                why = _outside_reason(r.relpath)
                if why:
                    problems.append(error(
                        f"{where}: {split_name} entry {i} is {r.relpath!r}, {why}, outside the "
                        f"dataset folder. Entries are paths relative to {self.image_path}; use "
                        "the official split file."))
                    break  # one per split is enough to show what is wrong
        return problems

    def record_problems(self, train, val, test):
        """Labels that disagree with themselves or with the bundled class list."""
        problems = []
        where = ", ".join(self.source_names) or str(self.split_path)
        names = {}
        for split_name, records in zip(SPLITS, (train, val, test)):
            if not records:
                problems.append(error(f"{self.dataset_path}: the {split_name} split is empty "
                                      f"(read from {where}). " + self.how_to_get()))
            for r in records:
                if names.setdefault(r.label, r.classname) != r.classname:
                    problems.append(error(
                        f"{where}: label {r.label} is both {names[r.label]!r} and "
                        f"{r.classname!r} ({split_name}: {r.relpath}). Use the official split."))
                    return problems
        train_labels = {r.label for r in train}
        if train and sorted(train_labels) != list(range(len(train_labels))):
            problems.append(error(f"{where}: training labels are not 0..{len(train_labels) - 1}"
                                  " without gaps. Use the official split."))
        for split_name, records in (("val", val), ("test", test)):
            extra = sorted({r.label for r in records} - train_labels)
            if extra:
                problems.append(error(f"{where}: {split_name} has label(s) {examples(extra)} "
                                      "that no training image has. Use the official split."))
        problems += self.classlist_problems([names[k] for k in sorted(names)], where)
        return problems

    def classlist_problems(self, found, where):
        listed = self.classlist or self.catalog_key
        try:
            expected = class_names(listed)
        except KeyError:
            return []
        if found == expected:
            return []
        diff = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b),
                    min(len(found), len(expected)))
        got = found[diff] if diff < len(found) else "(none)"
        want = expected[diff] if diff < len(expected) else "(none)"
        return [warning(f"{where}: classes differ from the CoOp family's list "
                        f"(sar_prompt/classnames/{listed}.txt): {len(found)} classes "
                        f"vs {len(expected)}; label {diff} is {got!r}, expected {want!r}. "
                        "Base/new halves will not match published results; use the official "
                        "split file.")]

    def missing_problems(self, train, val, test):
        """Errors for split entries whose image file is absent."""
        if self.records_are_listed:
            return []
        problems = []
        for split_name, records in zip(SPLITS, (train, val, test)):
            missing = [r.relpath for r in records if not (self.image_path / r.relpath).is_file()]
            if missing:
                problems.append(error(
                    f"{self.split_path} lists {len(missing)} {split_name} image(s) that are not "
                    f"under {self.image_path} (e.g. {examples(missing)}). Re-download or "
                    "re-extract the images, or use the split file that matches them."))
        return problems

    def load_records(self):
        """Layout check, then records, then their consistency: DataError on any error."""
        self.check_layout()
        train, val, test = self.read_records()
        raise_errors(self.path_problems(train, val, test))
        raise_errors(self.record_problems(train, val, test)
                     + self.missing_problems(train, val, test))
        return train, val, test

    # -- few-shot sampling and its cache -----------------------------------------------
    def shortfall_problems(self, train, val, num_shots):
        """Warnings for classes with fewer images than NUM_SHOTS asks for. Like the CoOp
        family, sampling then takes all of them: training works, on fewer shots."""
        problems = []
        for split_name, records, n in (("train", train, num_shots),
                                       ("val", [] if self.val_is_test else val,
                                        min(num_shots, 4))):
            short = [(items[0].classname, len(items)) for items in group_by_label(records).values()
                     if len(items) < n]
            if short:
                problems.append(warning(
                    f"NUM_SHOTS={num_shots}: {len(short)} class(es) have fewer than {n} {split_name} "
                    f"images in {self.source_names[0] if self.source_names else self.split_path} "
                    f"(e.g. {examples(f'{c}: {k}' for c, k in short)}); all of their images are "
                    "used, as the CoOp family does." + (
                        f" Lower DATASET.NUM_SHOTS to {min(k for _, k in short)} for equal "
                        "shots per class." if split_name == "train" else "")))
        return problems

    def few_shot(self, train, val, num_shots, seed):
        raise_errors(self.shortfall_problems(train, val, num_shots))
        cache = (self.dataset_path / "split_fewshot" /
                 f"shot_{num_shots}-seed_{seed}-{self.source_hash[:12]}.json")
        if seed >= 0 and cache.is_file():
            try:
                data = json.loads(cache.read_text())
                if data.get("version") == FEWSHOT_CACHE_VERSION:
                    print(f"[sar_prompt] few-shot samples from {cache}")
                    self.fewshot_file = cache
                    train = [Record(*e) for e in data["train"]]
                    return train, (val if self.val_is_test else [Record(*e) for e in data["val"]])
            except (json.JSONDecodeError, KeyError, TypeError):
                print(f"[sar_prompt] ignoring unreadable few-shot cache {cache}")
        rng = random.Random(seed) if seed >= 0 else random.Random()
        train = sample_few_shot(train, num_shots, rng)
        if not self.val_is_test:
            val = sample_few_shot(val, min(num_shots, 4), rng)
        if seed >= 0:
            payload = {"version": FEWSHOT_CACHE_VERSION, "sources": self.source_names,
                       "sources_sha256": self.source_hash, "num_shots": num_shots, "seed": seed,
                       "train": [list(r) for r in train],
                       "val": [] if self.val_is_test else [list(r) for r in val]}
            try:
                atomic_write_json(cache, payload, indent=None)
                print(f"[sar_prompt] few-shot samples saved to {cache}")
                self.fewshot_file = cache
            except OSError as exc:  # a read-only data folder is fine: just no cache
                print(f"[sar_prompt] cannot cache few-shot samples at {cache} ({exc})")
        return train, val

    # -- images ------------------------------------------------------------------------
    def image_problems(self, paths, deep=False):
        """Errors for files that are not readable images (see sar_prompt.data.images)."""
        memo = self.dataset_path / "split_fewshot" / VERIFIED_MEMO
        bad = image_check.verify(paths, deep=deep, memo_path=memo)
        if not bad:
            return []
        listed = examples((f"{p} ({why})" for p, why in bad), n=5)
        return [error(f"{len(bad)} image file(s) are unreadable or truncated: {listed}. "
                      "Re-download or re-extract them (the archive's checksum is checked by "
                      f"`sar-prompt data download {self.catalog_key}`).")]

    def verify_images(self, *splits):
        paths = {str(self.image_path / r.relpath) for records in splits for r in records}
        raise_errors(self.image_problems(paths))


def _outside_reason(relpath):
    """Why a split entry leaves the image folder (None when it stays inside)."""
    if PurePosixPath(relpath).is_absolute() or PureWindowsPath(relpath).drive \
            or relpath.startswith("\\"):
        return "an absolute path"
    if ".." in PurePosixPath(relpath.replace("\\", "/")).parts:
        return "a path through '..'"
    return None
