"""A sweep's table: one row per point (a config folder's overrides), from the runs on
disk; as markdown, CSV, JSON and a figure of HM against the swept value. Used after a sweep
(sar_prompt/orchestration/sweep.py) and by `sar-prompt results --sweep`.
`sweep_rows` returns the rows as data."""
import csv
import io
import json
import sys
from pathlib import Path

from sar_prompt import results
from sar_prompt.errors import ConfigError
from sar_prompt.results import records
from sar_prompt.results.aggregate import phases
from sar_prompt.results.formats import METRIC_TITLES
from sar_prompt.runs.identity import SEPARATOR, overrides_of_folder
from sar_prompt.runs.protocols import (BASE2NEW_SHOTS, FEWSHOT_SHOTS, TRANSFER_SOURCE,
                                       dataset_title)

SELECTION_NOTE = ("Picking the best point by these numbers is selection on the test split: "
                  "tune on a validation split, or report every point.")
NO_OVERRIDES = "(no overrides)"


# -- the table -------------------------------------------------------------------------------
def sweep_rows(root, protocol, trainer, point_folders, datasets=None, seeds=(1, 2, 3),
               shots=None, source=TRANSFER_SOURCE):
    """One row per point, as data: {"point", "folders", "cells": {column: {metric: mean}},
    "average": {metric: mean}, "missing": runs not finished}. `point_folders` is
    [(label, folder)], folder a config folder name or a function (dataset, shots) -> name."""
    rows = []
    for label, folder in point_folders:
        pick = folder if callable(folder) else (lambda d, k, name=folder: name)
        table = results.build_table(root, protocol, [trainer], datasets, seeds, shots,
                                    allow_partial=True, source=source,
                                    configs=lambda t, d, k, pick=pick: pick(d, k))
        cells = {}
        for e in table.entries:
            column = e.dataset if len(table.shots) == 1 else f"{e.dataset}@{e.shots}"
            cells.setdefault(column, {})[e.metric] = e.mean
            cells[column]["n"] = min(e.n, cells[column].get("n", e.n))
        average = {e.metric: e.mean for e in table.averages if len(table.shots) == 1}
        rows.append({"point": label or NO_OVERRIDES,
                     "folders": dict(table.configs.get(trainer, {})),
                     "cells": cells, "average": average, "missing": len(table.problems),
                     "protocol": protocol, "trainer": trainer, "seeds": list(table.seeds)})
    return rows


def _columns(rows):
    return list(dict.fromkeys(c for r in rows for c in r["cells"]))


def _fmt(value):
    return "-" if value is None else f"{value:.2f}"


def to_markdown(rows, title=""):
    if not rows:
        return "(no sweep points)"
    metrics = results.METRICS[rows[0]["protocol"]]
    columns = _columns(rows)
    with_average = len(columns) > 1 and any(r["average"] for r in rows)
    header = ["Point"]
    for column in columns + (["average"] if with_average else []):
        name = "Average" if column == "average" else dataset_title(column.split("@")[0]) + (
            f" {column.split('@')[1]}-shot" if "@" in column else "")
        header += [f"{name} {METRIC_TITLES[m]}" for m in metrics]
    lines = ([f"### {title}", ""] if title else [])
    lines += ["| " + " | ".join(header) + " |",
              "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    for r in rows:
        cells = [r["point"]]
        for column in columns:
            cells += [_fmt(r["cells"].get(column, {}).get(m)) for m in metrics]
        if with_average:
            cells += [_fmt(r["average"].get(m)) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = " ".join(map(str, rows[0]["seeds"]))
    lines += ["", f"_Mean over seeds {seeds}; a point's folders are named "
                  f"<config>{SEPARATOR}<its overrides>._"]
    incomplete = [r["point"] for r in rows if r["missing"]]
    if incomplete:
        lines.append(f"_Not finished (averaged over what there is): {', '.join(incomplete)}._")
    lines.append(f"_{SELECTION_NOTE}_")
    return "\n".join(lines)


def to_csv(rows):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["point", "column", "metric", "mean", "missing"])
    for r in rows:
        for column, values in list(r["cells"].items()) + [("average", r["average"])]:
            for metric, mean in values.items():
                if metric != "n":
                    writer.writerow([r["point"], column, metric,
                                     "" if mean is None else f"{mean:.4f}", r["missing"]])
    return buf.getvalue()


def figure_rows(rows):
    """(plots.plot_sweep's rows, x-axis label) of base-to-new sweep rows. A sweep of one key
    with numeric values is drawn against the value; any other against the point's rank."""
    pairs = [r["point"].split("=", 1) for r in rows]
    keys = {p[0] for p in pairs if len(p) == 2 and "," not in p[1]}
    try:
        values = [float(p[1]) for p in pairs] if len(keys) == 1 else None
    except (IndexError, ValueError):
        values = None
    out = []
    for i, r in enumerate(rows):
        datasets = {d: (c.get("base"), c.get("new"), c.get("hm")) for d, c in r["cells"].items()
                    if None not in (c.get("base"), c.get("new"), c.get("hm"))}
        if len(datasets) > 1 and None not in [r["average"].get(m) for m in ("base", "new", "hm")]:
            datasets[results.AVERAGE] = tuple(r["average"][m] for m in ("base", "new", "hm"))
        label = pairs[i][1] if values is not None else r["point"]
        out.append({"label": label, "value": values[i] if values is not None else i,
                    "datasets": datasets})
    return out, (next(iter(keys)) if values is not None else "sweep point")


def save(rows, folder, name, plot=True):
    """<name>.md, .csv, .json and, for base-to-new, the figure of HM against the swept value
    (.png, .pdf, .svg; skipped without matplotlib); the paths written."""
    from sar_prompt.io import atomic_write_text

    folder = Path(folder)
    paths = [atomic_write_text(folder / f"{name}.md", to_markdown(rows) + "\n"),
             atomic_write_text(folder / f"{name}.csv", to_csv(rows)),
             atomic_write_text(folder / f"{name}.json",
                               json.dumps(rows, indent=2, ensure_ascii=False) + "\n")]
    if plot and rows and rows[0]["protocol"] == "base2new":
        drawn, xlabel = figure_rows(rows)
        if all(r["datasets"] for r in drawn):
            try:
                from sar_prompt.results.plots import plot_sweep

                paths += plot_sweep(drawn, folder / name, xlabel=xlabel) or []
            except ImportError:
                print("[sar_prompt] matplotlib is not installed: no sweep figure")
    return paths


def table_name(protocol, trainer):
    return f"sweep_{protocol}_{trainer}"


# -- points found on disk (sar-prompt results --sweep) ------------------------------
def points_on_disk(root, protocol, trainer, datasets, shots, source=TRANSFER_SOURCE):
    """[(label, folder function)] of the config folders of `trainer` under `root`, one point
    per overrides tag (the part of the folder name after `__`); labels from the names."""
    found = {}  # tag -> {(dataset, shots): folder}
    for dataset in datasets:
        for k in shots:
            phase = phases(protocol, dataset, source)[0][0]
            where = Path(root) / phase / (source if protocol in ("xd", "dg") else dataset) \
                / f"shots_{k}" / trainer
            if not where.is_dir():
                continue
            for sub in sorted(p.name for p in where.iterdir() if p.is_dir()):
                found.setdefault(overrides_of_folder(sub), {})[(dataset, k)] = sub
    out = []
    for tag in sorted(found, key=lambda t: (t != "", t)):
        by_cell = found[tag]
        out.append((tag or NO_OVERRIDES,
                    lambda d, k, by_cell=by_cell: by_cell.get((d, k), "(none)")))
    return out


def several_configs(root, protocol, trainer, shots, source=TRANSFER_SOURCE):
    """Whether some dataset of `trainer` under `root` has runs in several config folders."""
    for phase in {phases(protocol, d, source)[0][0] for d in ("x", source)}:
        for folder in (Path(root) / phase).glob(f"*/shots_*/{trainer}"):
            if sum(p.is_dir() for p in folder.iterdir()) > 1:
                return True
    return False


def results_main(args, root, protocol, trainer):
    """`sar-prompt results ... --sweep`: the sweep table of what is on disk."""
    shots = list(args.shots or (FEWSHOT_SHOTS if protocol == "fewshot"
                                else (BASE2NEW_SHOTS,)))
    datasets = list(args.datasets or records.datasets_of(records.select(
        records.scan(root), trainers=[trainer])))
    found = points_on_disk(root, protocol, trainer, datasets, shots, args.source)
    if not found:
        raise ConfigError(f"no runs of {trainer} under {root}.")
    rows = sweep_rows(root, protocol, trainer, found, datasets, args.seeds, shots, args.source)
    print(to_markdown(rows, f"{protocol} sweep: {trainer}, {len(rows)} points"))
    if args.save:
        for path in save(rows, args.save, table_name(protocol, trainer)):
            print(f"wrote {path}", file=sys.stderr)
    return 0
