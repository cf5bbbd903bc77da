"""Novel-class lists: the names SAR treats as potential unseen classes, one JSON per dataset.

Schema (version 1), `novel_classes/<dataset key>.json`:

    {
      "schema": "sar-prompt/novel-classes",
      "version": 1,
      "dataset": "Caltech101",            # Dassl dataset name the list was made for
      "novel_classes": ["...", ...],      # non-empty, unique (case/punctuation-insensitive)
      "provenance": {                     # how the list was produced, truthfully
        "source": "manual" | "llm" | "vocab" | "file" | "wordnet" | ...,
        "description": "...",             # free text: who/what made it, from what
        "created": "2026-11-29T...",      # when
        ...                               # source-specific details (model, prompt, seed)
      },
      "audit": {                          # optional: what the validation step did
        "class_list": "...",              # which class list base/new were taken from
        "received": 212, "kept": 180,
        "dropped": {"base": [...], "duplicate": [...], ...},   # reason -> names
        "new_overlap": {"policy": "kept" | "excluded", "count": 3, "names": [...]}
      }
    }

Files without "audit" (older lists, hand-made files) stay valid. `sar-prompt novel`
makes and checks these files; see docs/novel_classes.md.
"""
import json
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from sar_prompt.errors import NovelClassesError

SCHEMA = "sar-prompt/novel-classes"
VERSION = 1
MAX_NAME_CHARS = 200


def shipped_dir() -> Path:
    """The folder of the lists shipped with sar_prompt (`novel_classes/` in the repository)."""
    return Path(str(resources.files("sar_prompt.novel_classes")))


def default_path(dataset_key: str) -> Path:
    return shipped_dir() / f"{dataset_key}.json"


def how_to_make(dataset_key: str) -> str:
    return (f"Make it from a plain-text list (one name per line) with `sar-prompt novel "
            f"from-file NAMES.txt --dataset {dataset_key}`, offline from CLIP's vocabulary with "
            f"`sar-prompt novel vocab --dataset {dataset_key}`, with GPT-4o with "
            f"`sar-prompt novel generate --dataset {dataset_key}` (needs "
            "OPENAI_API_KEY), or point TRAINER.SAR.NOVEL_FILE at an existing list.")


def normalized(name: str) -> str:
    """The form in which two names count as the same class: case, accents, spaces and
    punctuation do not count ("St. Bernard" = "st bernard" = "St_Bernard")."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", letters.casefold())


@dataclass
class NovelClassList:
    dataset: str
    names: list
    provenance: dict
    path: Path = None
    extra: dict = field(default_factory=dict)

    def to_json(self):
        out = {"schema": SCHEMA, "version": VERSION, "dataset": self.dataset,
               "novel_classes": list(self.names), "provenance": dict(self.provenance)}
        out.update(self.extra)
        return out


def validate(obj, where, dataset_key="DATASET"):
    """A NovelClassList from a parsed JSON object; every problem names `where`."""
    fix = how_to_make(dataset_key)
    if not isinstance(obj, dict):
        raise NovelClassesError(f"{where}: expected a JSON object with 'novel_classes', got "
                                f"{type(obj).__name__}. {fix}")
    if obj.get("schema") != SCHEMA:
        raise NovelClassesError(f"{where}: 'schema' must be {SCHEMA!r} (got "
                                f"{obj.get('schema')!r}). {fix}")
    if obj.get("version") != VERSION:
        raise NovelClassesError(f"{where}: unsupported 'version' {obj.get('version')!r}; this "
                                f"sar_prompt reads version {VERSION}.")
    for key, kind in (("dataset", str), ("novel_classes", list), ("provenance", dict)):
        if not isinstance(obj.get(key), kind):
            raise NovelClassesError(f"{where}: key {key!r} must be a {kind.__name__} "
                                    f"(got {type(obj.get(key)).__name__}). {fix}")
    names = obj["novel_classes"]
    if not names:
        raise NovelClassesError(f"{where}: 'novel_classes' is empty; SAR needs at least one "
                                f"novel class. {fix}")
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise NovelClassesError(f"{where}: novel_classes[{i}] is {name!r}; every entry must "
                                    "be a non-empty string.")
        if not name.isprintable():
            raise NovelClassesError(f"{where}: novel_classes[{i}] {name!r} has non-printable "
                                    "characters.")
        if len(name) > MAX_NAME_CHARS:
            raise NovelClassesError(f"{where}: novel_classes[{i}] is {len(name)} characters "
                                    f"long (limit {MAX_NAME_CHARS}); shorten it.")
        if not normalized(name):
            raise NovelClassesError(f"{where}: novel_classes[{i}] {name!r} has no letter or "
                                    "digit.")
    seen, dups = {}, []
    for name in names:
        key = normalized(name)
        if key in seen:
            dups.append(f"{seen[key]!r} / {name!r}")
        else:
            seen[key] = name
    if dups:
        raise NovelClassesError(f"{where}: duplicate novel classes (case, spaces and "
                                f"punctuation do not count): {', '.join(dups[:10])}. Remove the "
                                "repeats.")
    if not obj["provenance"].get("source") or not obj["provenance"].get("description"):
        raise NovelClassesError(f"{where}: 'provenance' needs 'source' and 'description' saying "
                                "how the list was produced.")
    if "audit" in obj:
        _check_audit(obj["audit"], where)
    known = {"schema", "version", "dataset", "novel_classes", "provenance"}
    extra = {k: v for k, v in obj.items() if k not in known}
    return NovelClassList(obj["dataset"], [n.strip() for n in names], obj["provenance"],
                          extra=extra)


def _check_audit(audit, where):
    """The optional "audit" record must at least be well-formed: tools read it back."""
    if not isinstance(audit, dict):
        raise NovelClassesError(f"{where}: 'audit' must be an object (got "
                                f"{type(audit).__name__}); remove it or remake the file.")
    dropped = audit.get("dropped", {})
    if not isinstance(dropped, dict) or not all(isinstance(v, list) for v in dropped.values()):
        raise NovelClassesError(f"{where}: 'audit.dropped' must map a reason to a list of names.")
    overlap = audit.get("new_overlap")
    if overlap is not None:
        if not isinstance(overlap, dict) or overlap.get("policy") not in ("kept", "excluded"):
            raise NovelClassesError(f"{where}: 'audit.new_overlap.policy' must be 'kept' or "
                                    f"'excluded' (got {overlap!r}).")
        names = overlap.get("names")
        if not isinstance(names, list) or overlap.get("count") != len(names):
            raise NovelClassesError(f"{where}: 'audit.new_overlap' needs 'names' (a list) and "
                                    "'count' equal to its length.")


def load(path, dataset_key="DATASET", dataset_name=None):
    """Read and validate a novel-class file. With `dataset_name`, the file must be for it."""
    from sar_prompt.io import DuplicateKeyError, loads_json

    path = Path(path)
    if path.is_dir():
        raise NovelClassesError(f"Novel-class file {path} is a folder, not a file. Give the "
                                "list's .json file (TRAINER.SAR.NOVEL_FILE names one file; \"\" "
                                f"= the one shipped with sar_prompt). {how_to_make(dataset_key)}")
    if not path.is_file():
        raise NovelClassesError(f"Novel-class file {path} does not exist. {how_to_make(dataset_key)}")
    try:
        obj = loads_json(path.read_text(encoding="utf-8"), str(path))
    except DuplicateKeyError as exc:
        raise NovelClassesError(f"{exc} {how_to_make(dataset_key)}") from None
    except UnicodeDecodeError as exc:
        raise NovelClassesError(f"{path} is not UTF-8 text ({exc}).") from exc
    except json.JSONDecodeError as exc:
        raise NovelClassesError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno}. {how_to_make(dataset_key)}") from exc
    result = validate(obj, str(path), dataset_key)
    if dataset_name is not None and result.dataset != dataset_name:
        raise NovelClassesError(f"{path} is a novel-class list for {result.dataset!r} (its "
                                f"'dataset'), but the run trains on {dataset_name!r}: its names "
                                f"were chosen and checked against {result.dataset}'s classes, "
                                f"not {dataset_name}'s. Set TRAINER.SAR.NOVEL_FILE to a list made "
                                f"for {dataset_name} (\"\" = the one shipped with sar_prompt). "
                                f"{how_to_make(dataset_key)}")
    result.path = path
    return result
