"""Published baselines: the base / new / HM each method's own paper reports, from
sar_prompt/published/base2new.csv (every number with its source on its row; cells no
readable source gives are empty), beside a table's reproduced numbers.

A reproduced baseline more than `tolerance` points from its published number is flagged:
the quickest check that data, weights and config are right. A published average covers the
11 datasets of the benchmark, so it is shown beside, and compared with, only an average over
the same 11 (never a subset's average).
"""
import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sar_prompt.catalog import BENCHMARK
from sar_prompt.errors import ConfigError
from sar_prompt.runs.protocols import method_name
from sar_prompt.results.aggregate import AVERAGE, Entry

DEFAULT_TOLERANCE = 2.0
METRICS = ("base", "new", "hm")


@dataclass(frozen=True)
class Published:
    method: str      # as its paper names it (CLIP, CoOp, ...)
    trainer: str     # the trainer that reproduces it here
    dataset: str     # a dataset key or "average"
    base: float
    new: float
    hm: float
    source: str
    note: str


def default_path():
    return Path(str(resources.files("sar_prompt.published").joinpath("base2new.csv")))


def _number(text, path, line, column):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{path} line {line}: {column} is {text!r}, not a number; fix the "
                          "file (leave the cell empty where no source gives a number).") from None


def load(path=None):
    """Every row of the published file (comment lines start with #)."""
    path = Path(path or default_path())
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the published baselines {path}: {exc}") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines)
                if line.strip() and not line.startswith("#")]
    reader = csv.DictReader([line for _, line in numbered])
    rows = []
    for (number, _), row in zip(numbered[1:], reader):
        values = [_number(row.get(m), path, number, m) for m in METRICS]
        if any(v is not None for v in values) and not (row.get("source") or "").strip():
            raise ConfigError(f"{path} line {number}: numbers without a source; every number "
                              "needs the source it is copied from.")
        rows.append(Published(row["method"], row["trainer"], row["dataset"], *values,
                              row.get("source", ""), row.get("note", "")))
    return rows


def for_trainer(rows, trainer):
    """Published rows of the method a trainer reproduces (a SAR variant has none: SAR's own
    numbers are what is measured)."""
    if method_name(trainer) != trainer:
        return []
    return [r for r in rows if r.trainer == trainer]


def averages_benchmark(table, trainer):
    """Whether `trainer`'s average row in `table` is over exactly the 11 benchmark datasets
    (what a published average covers)."""
    mine = [e for e in table.averages if e.trainer == trainer and e.metric != "hm"]
    return bool(mine) and all(set(e.values) == {d.key for d in BENCHMARK} for e in mine)


def entries(table, rows):
    """Entries (trainer = the reproducing trainer) of the published numbers of the table's
    trainers, for the table's datasets, and for its average row only where the trainer's
    average is over the same 11 datasets as the published one (never beside a subset's)."""
    out = []
    for trainer in table.trainers:
        wanted = set(table.datasets) | ({AVERAGE} if averages_benchmark(table, trainer)
                                        else set())
        for r in for_trainer(rows, trainer):
            if r.dataset not in wanted:
                continue
            for metric in METRICS:
                value = getattr(r, metric)
                if value is not None:
                    out.append(Entry(trainer, r.dataset, table.shots[0], metric, value,
                                     config=r.source))
    return out


def withheld_averages(table, rows):
    """The trainers of `table` with a published average that is not shown beside theirs
    (their average row is not over the 11 benchmark datasets)."""
    return [t for t in table.trainers if not averages_benchmark(table, t) and any(
        r.dataset == AVERAGE and r.base is not None for r in for_trainer(rows, t))]


def flags(table, published_entries, tolerance, withheld=()):
    """[(trainer, dataset, metric, reproduced, published)] more than `tolerance` apart, and
    notes on what could not be compared (`withheld`: withheld_averages)."""
    found, notes, compared = [], [], 0
    for p in published_entries:
        if p.dataset == AVERAGE and not averages_benchmark(table, p.trainer):
            continue
        rows = table.averages if p.dataset == AVERAGE else table.entries
        mine = table.lookup(rows, p.trainer, p.dataset, p.shots, p.metric)
        if mine is None or mine.mean is None:
            continue
        compared += 1
        if abs(mine.mean - p.mean) > tolerance:
            found.append((p.trainer, p.dataset, p.metric, mine.mean, p.mean))
    if withheld:
        notes.append(f"the published averages ({', '.join(withheld)}) cover the 11 benchmark "
                     "datasets; this table's average row is over others (its datasets: "
                     f"{len(table.datasets)}), so it is neither shown beside them nor "
                     "compared with them.")
    return found, notes, compared


def flags_text(found, notes, compared, tolerance):
    from sar_prompt.runs.protocols import dataset_title

    lines = []
    if found:
        lines.append(f"{len(found)} reproduced number(s) more than {tolerance:g} points from "
                     "the published ones (check data, weights and config):")
        for trainer, dataset, metric, mine, theirs in found:
            title = "Average" if dataset == AVERAGE else dataset_title(dataset)
            lines.append(f"  {trainer} on {title} {metric}: {mine:.2f} reproduced vs "
                         f"{theirs:.2f} published ({mine - theirs:+.2f})")
    elif not compared:
        lines.append("no reproduced baseline has a published number to compare with (the "
                     "published file gives the averages over the 11 datasets only).")
    else:
        lines.append(f"all {compared} reproduced number(s) with a published one are within "
                     f"{tolerance:g} points of it.")
    return "\n".join(lines + [f"note: {n}" for n in notes])
