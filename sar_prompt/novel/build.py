"""From candidate names to a written novel-class file, for one dataset or many.

`run` loops over datasets: each file is written atomically as soon as its dataset is done,
an existing file is kept unless `force`, and a forced run over several datasets records what
it finished in a progress file, so running the same command again after an interruption
skips what was finished instead of asking (and paying) again.
"""
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from sar_prompt.errors import NovelClassesError
from sar_prompt.io import atomic_write_json
from sar_prompt.novel import NovelClassList, how_to_make, load, validate
from sar_prompt.novel import facts as facts_mod
from sar_prompt.novel.clean import clean, key_secrets

PROGRESS_FILE = ".novel-progress"  # hidden, and not *.json: never taken for a list or package data


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def class_list_note(facts):
    return (f"bundled sar_prompt/classnames/{facts.key}.txt: {len(facts.base) + len(facts.new)} "
            f"classes, the first {len(facts.base)} base, the other {len(facts.new)} new")


def make_list(facts, candidates, provenance, exclude_new=False, limit=None, secrets=(),
              cap=None):
    """(NovelClassList, Cleaned) from raw candidates; provenance gets 'created' if missing.
    No kept name holds one of `secrets` (see `clean`), nor does the provenance. `cap`: the
    number of names asked for; an answer with more keeps that many, and the summary and
    audit say how many more it held."""
    candidates = list(candidates) if cap is not None else candidates
    cleaned = clean(candidates, facts.base, facts.new, facts.template, exclude_new,
                    cap if cap is not None else limit, secrets)
    if cap is not None:
        cleaned.cap, cleaned.unused = cap, len(candidates) - cleaned.received
    if not cleaned.names:
        raise NovelClassesError(f"{facts.key}: no name is left after validation "
                                f"({cleaned.summary()}). {how_to_make(facts.key)}")
    provenance = key_secrets(secrets).redact_json(
        {**provenance, "created": provenance.get("created") or now()})
    result = NovelClassList(facts.name, cleaned.names, provenance,
                            extra={"audit": cleaned.audit(class_list_note(facts))})
    validate(result.to_json(), f"the new list for {facts.key}", facts.key)  # same rules as load
    return result, cleaned


def write_list(result, path):
    atomic_write_json(path, result.to_json())
    result.path = Path(path)
    return result


def _fingerprint(params):
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def run(keys, produce, out_dir, force=False, params=None, log=print):
    """Make `out_dir/<key>.json` for each key with `produce(facts) -> (NovelClassList,
    Cleaned)`. Returns the paths written. `params` (JSON-able) identify the request: a
    forced run resumes from the progress file only if they are the same."""
    out_dir = Path(out_dir)
    all_facts = [facts_mod.dataset_facts(k) for k in keys]  # fail before any request
    progress_path = out_dir / PROGRESS_FILE
    fingerprint = _fingerprint({"keys": list(keys), **(params or {})})
    done = []
    if force and len(keys) > 1 and progress_path.is_file():
        try:
            state = json.loads(progress_path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError):
            state = {}
        if state.get("fingerprint") == fingerprint:
            done = [k for k in state.get("done", []) if (out_dir / f"{k}.json").is_file()]
            if done:
                log(f"resuming an interrupted run ({progress_path}): {len(done)} dataset(s) "
                    f"already finished: {', '.join(done)}")
    written = []
    for i, facts in enumerate(all_facts, 1):
        path = out_dir / f"{facts.key}.json"
        head = f"[{i}/{len(all_facts)}] {facts.key}:"
        if facts.key in done:
            log(f"{head} finished earlier in this run, kept ({path})")
            continue
        if path.exists() and not force:
            log(f"{head} {path} exists, kept (--force replaces it)")
            continue
        log(f"{head} making the list ...")
        try:
            result, cleaned = produce(facts)
        except BaseException:
            finished = [a.key for a in all_facts[:i - 1]]
            if finished:
                log(f"stopped at {facts.key}; the files finished before it are kept. Run the "
                    "same command again to resume.")
            raise
        write_list(result, path)
        written.append(path)
        log(f"{head} {cleaned.summary()} -> {path}")
        if cleaned.new_overlap:
            log(f"  held-out new classes in the list: {', '.join(cleaned.new_overlap)}")
        if force and len(keys) > 1:
            done.append(facts.key)
            atomic_write_json(progress_path, {"fingerprint": fingerprint, "done": done})
    if force and len(keys) > 1 and progress_path.is_file():
        progress_path.unlink()  # the run is complete: nothing to resume
    return written


def _dataset_problems(path, result, dataset_key):
    """The list must be for the dataset it is meant for: `dataset_key` if given, else the
    one its file name says (`oxford_pets.json`), if that is a dataset key."""
    from sar_prompt.catalog import by_key

    expected = by_key(dataset_key or Path(path).stem)
    if expected is None or expected.name == result.dataset:
        return [], None
    why = (f"--dataset {dataset_key}" if dataset_key else
           f"the file name {Path(path).name} says {expected.key}")
    return [f"it is a list for {result.dataset!r} (its 'dataset'), but {why}, whose lists "
            f"must say {expected.name!r}; its names were checked against another dataset's "
            "classes. Make the list for this dataset (see --help)."], expected


def check_file(path, log=print, dataset_key=None):
    """Validate a written file and, for a dataset with a bundled class list, re-run the
    checks `clean` applies; with `dataset_key`, the file must be for that dataset. Returns
    a list of problems (empty if the file is fine)."""
    from sar_prompt.catalog import by_name
    from sar_prompt.novel.clean import fits_clip, screen
    from sar_prompt.novel import normalized

    result = load(path)
    problems, expected = _dataset_problems(path, result, dataset_key)
    info = expected or by_name(result.dataset)  # check against the classes it will meet
    source = result.provenance.get("source")
    if info is None:
        log(f"{path}: {len(result.names)} names ({source}) for {result.dataset}, a dataset "
            "sar_prompt has no facts about; schema only")
        return []
    try:
        facts = facts_mod.dataset_facts(info.key)
    except NovelClassesError as exc:
        log(f"{path}: {len(result.names)} names ({source}); schema only: {exc}")
        return problems
    base_keys = {normalized(n) for n in facts.base}
    new_keys = {normalized(n) for n in facts.new}
    base_hits = [n for n in result.names if normalized(n) in base_keys]
    new_hits = [n for n in result.names if normalized(n) in new_keys]
    if base_hits:
        problems.append(f"{len(base_hits)} base (training) classes: {', '.join(base_hits[:10])} "
                        "(the trainers leave them out; remake the list to drop them)")
    problems += screen(result.names)
    too_long = fits_clip(result.names, facts.template)
    if too_long:
        shown = ", ".join(f"{n!r} ({t} tokens)" for n, t in list(too_long.items())[:5])
        problems.append(f"{len(too_long)} names do not fit CLIP's 77 tokens: {shown}")
    audit = result.extra.get("audit", {}).get("new_overlap")
    if audit and audit.get("policy") == "excluded" and new_hits:
        problems.append(f"the audit says new classes were excluded, but {len(new_hits)} are in "
                        f"the list: {', '.join(new_hits[:10])}")
    status = "OK" if not problems else "PROBLEMS"
    log(f"{path}: {status}: {len(result.names)} names ({source}) for {result.dataset}; "
        f"{len(new_hits)} equal held-out new classes"
        + (f": {', '.join(new_hits)}" if new_hits else ""))
    for problem in problems:
        log(f"  - {problem}")
    return problems
