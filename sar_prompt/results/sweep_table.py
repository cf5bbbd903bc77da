"""A sweep's table: one row per point (a setting of the swept keys), from the runs on disk,
in every format of the result tables (formats.py: text, markdown, LaTeX, CSV, JSON; --std),
and a figure of each dataset's HM against the swept value. Used after a sweep
(sar_prompt/orchestration/sweep.py) and by `sar-prompt results --sweep`.

Points found on disk are labelled by the values their runs had (each config folder's
fingerprint.json), so a folder without overrides is the point of the keys' default values
(`SAR.WEIGHT=1`), the same row as `--sweep TRAINER.SAR.WEIGHT 1` makes.
"""
import json
import sys
from pathlib import Path

from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.results import records
from sar_prompt.results.aggregate import AVERAGE, Table, build_table, phases
from sar_prompt.runs import fingerprint
from sar_prompt.runs.identity import SEPARATOR, canonical, override_tag, overrides_of_folder
from sar_prompt.runs.protocols import BASE2NEW_SHOTS, TRANSFER_SOURCE, run_dir

SELECTION_NOTE = ("Picking the best point by these numbers is selection on the test split: "
                  "tune on a validation split, or report every point.")
NO_OVERRIDES = "(no overrides)"


# -- the table -------------------------------------------------------------------------------
def sweep_table(root, protocol, trainer, point_folders, datasets=None, seeds=None,
                shots=None, source=TRANSFER_SOURCE):
    """A Table whose rows ("trainers") are the points of `point_folders` [(label, folder)],
    folder a config folder name or a function (dataset, shots) -> name. Every expected run
    that is not finished is in `problems` (the numbers average what there is)."""
    merged = None
    for label, folder in point_folders:
        label = label or NO_OVERRIDES
        pick = folder if callable(folder) else (lambda d, k, name=folder: name)
        t = build_table(root, protocol, [trainer], datasets, seeds, shots, allow_partial=True,
                        source=source, configs=lambda _, d, k, pick=pick: pick(d, k))
        if merged is None:
            merged = Table(protocol, str(root), [], t.datasets, t.seeds, t.shots, t.source)
            datasets, seeds, shots = t.datasets, t.seeds, t.shots  # every point the same
            if protocol in ("xd", "dg"):
                datasets = [d for d in datasets if d != t.source]
        merged.trainers.append(label)
        for e in t.entries + t.averages:
            e.trainer = label
        merged.entries += t.entries
        merged.averages += t.averages
        merged.problems += [{**p, "run": f"{label}: {p['run']}"} for p in t.problems]
        merged.warnings += [f"{label}: {w}" for w in t.warnings]
        merged.configs[label] = t.configs.get(trainer, {})
        if t.zero_shot:
            merged.zero_shot.append(label)
    if merged is not None and len([d for d in merged.datasets if d != merged.source]) == 1:
        merged.averages = []  # one dataset: its average would repeat it
    return merged


def _grid(table, trainer, with_std):
    from sar_prompt.results.formats import grid

    g = grid(table, with_std, best=False)  # no bold: the best point is a test-set pick
    g.row_title = "Point"
    g.title = f"{table.protocol} sweep: {trainer}, {len(table.trainers)} points"
    g.notes = [n for n in g.notes if not n.startswith("Δ")]
    g.notes.append(f"A point's runs are in config folders <config>{SEPARATOR}<its "
                   "overrides> (an override equal to the default names nothing).")
    incomplete = sorted({p["run"].split(":")[0] for p in table.problems})
    if incomplete:
        g.notes.append(f"Not finished (averaged over what there is): {', '.join(incomplete)}.")
    g.notes.append(SELECTION_NOTE)
    return g


def render(table, trainer, fmt="markdown", with_std=False, label=None):
    """The sweep table as `fmt` (formats.FORMATS); JSON: sweep_rows' rows."""
    from sar_prompt.results import formats
    from sar_prompt.results.latex import grid_latex

    if fmt == "json":
        return json.dumps(sweep_rows(table, trainer), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return formats.to_csv(table)
    g = _grid(table, trainer, with_std)
    if fmt == "text":
        return formats.grid_text(g)
    if fmt == "markdown":
        return formats.grid_markdown(g)
    if fmt == "latex":
        return grid_latex(g, label=label or f"tab:sweep-{trainer}")
    if fmt == "csv-wide":
        return formats.grid_csv_wide(g)
    raise ValueError(f"unknown format {fmt!r}")


def sweep_rows(table, trainer):
    """The points as data: [{"point", "folders", "cells": {column: {metric: mean, "n"}},
    "std": {column: {metric: std}}, "average": {metric: mean}, "missing": runs not
    finished, ...}]."""
    rows = []
    for label in table.trainers:
        cells, stds = {}, {}
        for e in table.entries:
            if e.trainer != label:
                continue
            column = e.dataset if len(table.shots) == 1 else f"{e.dataset}@{e.shots}"
            cells.setdefault(column, {})[e.metric] = e.mean
            cells[column]["n"] = min(e.n, cells[column].get("n", e.n))
            stds.setdefault(column, {})[e.metric] = e.std
        average = {e.metric: e.mean for e in table.averages
                   if e.trainer == label and len(table.shots) == 1}
        rows.append({"point": label, "folders": dict(table.configs.get(label, {})),
                     "cells": cells, "std": stds, "average": average,
                     "missing": sum(p["run"].startswith(f"{label}: ") for p in table.problems),
                     "protocol": table.protocol, "trainer": trainer,
                     "seeds": list(table.seeds)})
    return rows


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
            datasets[AVERAGE] = tuple(r["average"][m] for m in ("base", "new", "hm"))
        std = {d: tuple((r.get("std") or {}).get(d, {}).get(m) for m in ("base", "new", "hm"))
               for d in datasets if d != AVERAGE}
        label = pairs[i][1] if values is not None else r["point"]
        out.append({"label": label, "value": values[i] if values is not None else i,
                    "datasets": datasets, "std": std})
    return out, (next(iter(keys)) if values is not None else "sweep point")


def save(table, trainer, folder, name, plot=True, with_std=True):
    """<name>.md, .tex, .csv, .json and, for base-to-new, the figure of HM against the swept
    value (.png, .pdf, .svg; skipped without matplotlib); the paths written."""
    from sar_prompt.io import atomic_write_text

    folder = Path(folder)
    paths = [atomic_write_text(folder / f"{name}.{ext}",
                               render(table, trainer, fmt, with_std).rstrip("\n") + "\n")
             for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv"),
                              ("json", "json"))]
    rows = sweep_rows(table, trainer)
    if plot and rows and table.protocol == "base2new":
        drawn, xlabel = figure_rows(rows)
        if all(r["datasets"] for r in drawn):
            try:
                from sar_prompt.results.sweep_plot import plot_sweep

                paths += plot_sweep(drawn, folder / name, xlabel=xlabel) or []
            except ImportError:
                print("[sar_prompt] matplotlib is not installed: no sweep figure")
    return paths


def table_name(protocol, trainer):
    return f"sweep_{protocol}_{trainer}"


# -- points found on disk (sar-prompt results --sweep) ------------------------------------
def _pairs_of_tag(tag):
    """{short key: value} of a folder's overrides tag, or None when it is not KEY=V pairs
    (a --tag name, a hashed tag)."""
    if not tag:
        return {}
    out = {}
    for part in tag.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key or "." not in key:
            return None
        out[key] = value
    return out


def _value_in(config, short_key):
    """(full key, value) of a tag's short key (`SAR.WEIGHT`) in a fingerprint's config."""
    for key in (short_key, f"TRAINER.{short_key}"):
        node = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return key, node
    return None, None


def _folder_label(root, protocol, trainer, dataset, shots, folder, keys, source):
    """The point a config folder holds: the swept keys' values its runs had, read from one of
    its runs' fingerprint.json ("SAR.WEIGHT=1"); else its overrides tag."""
    tag = overrides_of_folder(folder)
    if _pairs_of_tag(tag) is None or not keys:
        return tag or NO_OVERRIDES
    phase = phases(protocol, dataset, source)[0][0]
    where = run_dir(root, phase, source if protocol in ("xd", "dg") else dataset, shots,
                    trainer, folder, 0).parent
    for seed_dir in sorted(records.seed_folders(where).values()) if where.is_dir() else []:
        try:
            fp = fingerprint.read(seed_dir)
        except SarPromptError:  # a key given twice: the folder's own name says enough
            fp = None
        if fp and isinstance(fp.get("config"), dict):
            opts = []
            for key in sorted(keys):
                full, value = _value_in(fp["config"], key)
                if full is None:
                    break
                opts += [full, canonical(value)]
            else:
                return override_tag(opts)
    return tag or NO_OVERRIDES


def points_on_disk(root, protocol, trainer, datasets, shots, source=TRANSFER_SOURCE):
    """[(label, folder function)] of the config folders of `trainer` under `root`, one point
    per setting of the swept keys (the keys of the folders' overrides tags)."""
    folders = {}  # (dataset, shots) -> [folder]
    for dataset in datasets:
        for k in shots:
            phase = phases(protocol, dataset, source)[0][0]
            where = Path(root) / phase / (source if protocol in ("xd", "dg") else dataset) \
                / f"shots_{k}" / trainer
            if where.is_dir():
                folders[dataset, k] = sorted(p.name for p in where.iterdir() if p.is_dir())
    keys = set()
    for names in folders.values():
        for name in names:
            keys |= set(_pairs_of_tag(overrides_of_folder(name)) or {})
    found = {}  # label -> {(dataset, shots): folder}
    for (dataset, k), names in folders.items():
        for name in names:
            label = _folder_label(root, protocol, trainer, dataset, k, name, keys, source)
            if (dataset, k) in found.get(label, {}):
                label = f"{label} [{name}]"  # two folders of one setting: keep both apart
            found.setdefault(label, {})[dataset, k] = name
    return [(label, lambda d, k, by_cell=by_cell: by_cell.get((d, k), "(none)"))
            for label, by_cell in sorted(found.items(), key=lambda i: (i[0] == NO_OVERRIDES,
                                                                       i[0]))]


def point_configs(root, protocol, point, source=TRANSFER_SOURCE):
    """configs(trainer, dataset, shots) for build_table that reads each trainer at sweep
    point `point` (a folder's overrides tag, e.g. SAR.WEIGHT=5) where it has runs of it, and
    at its default config where it has none (a method without the swept key)."""
    from sar_prompt.results.aggregate import _default_or_found

    from sar_prompt.runs.protocols import default_config

    on_disk = records.scan(root)

    def cell(trainer, dataset, shots):
        mine = records.configs_of(records.select(on_disk, trainers={trainer}))
        if not any(overrides_of_folder(c) == point for c in mine):
            return _default_or_found(root, protocol, trainer, dataset, shots, source, on_disk)
        there = records.configs_of(records.select(on_disk, datasets={dataset},
                                                  trainers={trainer}, shots={shots}))
        named = [c for c in there if overrides_of_folder(c) == point]
        if named:
            return named[0]
        base = default_config(trainer, protocol, dataset, shots) or next(
            c for c in mine if overrides_of_folder(c) == point).split(SEPARATOR)[0]
        return f"{base}{SEPARATOR}{point}"  # not there: reported as missing

    if not any(overrides_of_folder(r.config) == point for r in on_disk):
        tags = sorted({overrides_of_folder(r.config) for r in on_disk} - {""})
        raise ConfigError(f"--point {point}: no config folder under {root} is named "
                          f"<config>{SEPARATOR}{point}; the points there: "
                          f"{', '.join(tags) or 'none'} (a point equal to the defaults is the "
                          "folder without overrides: leave --point out).")
    return cell


def several_configs(root, protocol, trainer, shots, source=TRANSFER_SOURCE):
    """Whether some dataset of `trainer` under `root` has runs in several config folders."""
    for phase in {phases(protocol, d, source)[0][0] for d in ("x", source)}:
        for folder in (Path(root) / phase).glob(f"*/shots_*/{trainer}"):
            if sum(p.is_dir() for p in folder.iterdir()) > 1:
                return True
    return False


def results_main(args, root, protocol, trainer):
    """`sar-prompt results ... --sweep`: the sweep table of what is on disk, in
    --format, refused (exit 1) when a point's seed set is not complete unless
    --allow-partial."""
    from sar_prompt.results.formats import problems_text

    mine = records.select(records.scan(root), trainers={trainer})
    if args.shots:
        shots = list(args.shots)
    elif protocol == "fewshot":
        shots = records.shots_of(mine)
    else:
        shots = [records.most_common_shots(mine, BASE2NEW_SHOTS)]
    datasets = list(args.datasets or [d for d in records.datasets_of(mine)
                                      if protocol not in ("xd", "dg") or d != args.source])
    found = points_on_disk(root, protocol, trainer, datasets, shots, args.source)
    if not found:
        raise ConfigError(f"no runs of {trainer} under {root}.")
    table = sweep_table(root, protocol, trainer, found, datasets, args.seeds, shots,
                        args.source)
    if table.problems and not args.allow_partial:
        print(problems_text(table), file=sys.stderr)
        print("Refusing to average incomplete seed sets: run or repair the runs above, or "
              "pass --allow-partial.", file=sys.stderr)
        return 1
    text = render(table, trainer, args.format, args.std, args.latex_label)
    print(text, end="" if text.endswith("\n") else "\n")
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.save:
        for path in save(table, trainer, args.save, table_name(protocol, trainer),
                         plot=not args.no_plot, with_std=args.std):
            print(f"wrote {path}", file=sys.stderr)
    return 0
