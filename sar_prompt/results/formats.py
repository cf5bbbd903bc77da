"""Format: a Table as text, markdown, LaTeX (booktabs), CSV (long and wide) and JSON.

Every layout is the paper's: methods as rows, datasets (the reference order, then the
average) as column groups, Base / New / HM under each for base-to-new (shots for few-shot,
one column for transfer). A delta row (Base, New and HM) follows each SAR variant
(XSAR - X), and rows against zero-shot CLIP, when asked for, close the table. Means by
default; `with_std` adds ± the population std over seeds; each column's best method is bold
(LaTeX, markdown). `Grid` is that layout once; each format renders it (LaTeX: latex.py).
"""
import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from sar_prompt.runs.protocols import dataset_title
from sar_prompt.results.aggregate import AVERAGE, METRICS, ZERO_SHOT, delta_name
from sar_prompt.results.latex import block_columns, blocks, grid_latex

METRIC_TITLES = {"base": "Base", "new": "New", "hm": "HM", "accuracy": "Acc."}
FORMATS = ("text", "markdown", "latex", "csv", "csv-wide", "json")
EXTENSIONS = {"text": "txt", "markdown": "md", "latex": "tex", "csv": "csv",
              "csv-wide": "wide.csv", "json": "json"}


# -- the paper layout ---------------------------------------------------------------------------
@dataclass
class Cell:
    """One number of the layout: a mean (None: missing, shown "-"), its std, a mark such as
    "(2/3)" (fewer seeds than asked), `signed` for a difference, `best` for the best of its
    column among the methods (bold in LaTeX and markdown)."""
    mean: float = None
    std: float = None
    mark: str = ""
    signed: bool = False
    best: bool = False

    @property
    def number(self):
        if self.mean is None:
            return "-"
        return f"{self.mean:+.2f}" if self.signed else f"{self.mean:.2f}"

    def text(self):
        out = self.number
        if self.std is not None and self.mean is not None:
            out += f" ± {self.std:.2f}"
        return out + (f" {self.mark}" if self.mark else "")


@dataclass
class Row:
    label: str
    cells: list                  # Cells, one per column (groups x subcolumns)
    kind: str = "method"         # method | delta | published | zero-shot delta

    @property
    def values(self):
        return [c.mean for c in self.cells]

    @property
    def texts(self):
        return [c.text() for c in self.cells]


@dataclass
class Grid:
    title: str
    groups: list                 # [(group title, [column titles])]
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    group_keys: list = field(default_factory=list)  # dataset key of each group
    row_title: str = "Method"


def _columns(table):
    """[(group key, group title, [(column title, shots, metric)])] of the table."""
    columns = table.datasets + ([AVERAGE] if table.averages else [])
    out = []
    for d in columns:
        title = "Average" if d == AVERAGE else dataset_title(d)
        if d == table.source and d != AVERAGE:
            title += " (source)"
        if table.protocol == "base2new":
            subs = [(METRIC_TITLES[m], table.shots[0], m) for m in METRICS["base2new"]]
        elif table.protocol == "fewshot":
            subs = [(f"{k}-shot", k, "accuracy") for k in table.shots]
        else:
            subs = [("", table.shots[0], "accuracy")]
        out.append((d, title, subs))
    return out


def _cell(entry, expected, with_std):
    if entry is None or entry.mean is None:
        return Cell()
    partial = entry.dataset != AVERAGE and entry.n < expected
    return Cell(entry.mean, entry.std if with_std else None,
                f"({entry.n}/{expected})" if partial else "")


def label_of(table, trainer):
    """The name a trainer's rows show: its --label, else the trainer (zero-shot marked)."""
    if trainer in table.labels:
        return table.labels[trainer]
    return f"{trainer} (zero-shot)" if trainer in table.zero_shot else trainer


trainer_label = label_of


def delta_label(table, trainer, baseline):
    name = lambda t: table.labels.get(t, t)  # noqa: E731
    return f"Δ {name(trainer)} − {name(baseline)}"


def mark_best(rows):
    """Mark each column's best mean among the method rows (ties at the shown precision all
    count) where at least two methods have a number."""
    methods = [r for r in rows if r.kind == "method"]
    if len(methods) < 2:
        return
    for col in range(len(methods[0].cells)):
        shown = [(round(r.cells[col].mean, 2), r) for r in methods
                 if r.cells[col].mean is not None]
        if len(shown) < 2:
            continue
        top = max(v for v, _ in shown)
        for v, r in shown:
            r.cells[col].best = v == top


def grid(table, with_std=False, best=True):
    columns = _columns(table)
    g = Grid(title_of(table), [(title, [c[0] for c in subs]) for _, title, subs in columns],
             group_keys=[d for d, _, _ in columns])

    def method_rows(trainer):
        groups = sorted({grp for d in table.datasets for k in table.shots
                         for grp in table.groups(trainer, d, k)})
        for group in groups:
            cells = []
            for d, _, subs in columns:
                rows = table.averages if d == AVERAGE else table.entries
                for _, k, metric in subs:
                    e = table.lookup(rows, trainer, d, k, metric, "" if d == AVERAGE else group)
                    cells.append(_cell(e, table.expected_seeds(trainer),
                                       with_std and d != AVERAGE))
            label = label_of(table, trainer) + (f" [fp {group}]" if group else "")
            g.rows.append(Row(label, cells))

    def published_row(trainer):
        rows = [e for e in table.published if e.trainer == trainer]
        if not rows:
            return
        cells = []
        for d, _, subs in columns:
            for _, k, metric in subs:
                e = next((p for p in rows if (p.dataset, p.metric) == (d, metric)), None)
                cells.append(Cell(None if e is None else e.mean))
        g.rows.append(Row(f"{table.labels.get(trainer, trainer)} (published)", cells,
                          "published"))

    def delta_row(trainer, baseline, kind="delta"):
        name = delta_name(trainer, baseline)
        cells = []
        for d, _, subs in columns:
            for _, k, metric in subs:
                e = table.lookup(table.deltas, name, d, k, metric)
                cells.append(Cell(None if e is None else e.mean, signed=True))
        g.rows.append(Row(delta_label(table, trainer, baseline), cells, kind))

    inline = [(t, b) for t, b in table.pairs if b != ZERO_SHOT]
    for trainer in table.trainers:
        method_rows(trainer)
        published_row(trainer)
        for t, b in inline:
            if t == trainer:
                delta_row(t, b)
    for t, b in table.pairs:
        if b == ZERO_SHOT:
            delta_row(t, b, "zero-shot delta")
    if best and not table.grouped:
        mark_best(g.rows)
    g.notes = notes(table, with_std, any(c.best for r in g.rows for c in r.cells))
    return g


def notes(table, with_std, best=False):
    out = []
    if table.protocol == "base2new":
        out.append("HM: harmonic mean of the mean base and mean new accuracy"
                   + (" (± std of the per-seed HMs)" if with_std else "")
                   + "; Average: mean over datasets, its HM from the averaged base and new.")
    out.append("Mean over seeds " + " ".join(map(str, table.seeds))
               + (" ± population std" if with_std else "") + ".")
    if table.zero_shot:
        out.append(f"{', '.join(label_of(table, t) for t in table.zero_shot)}: one evaluation "
                   "per dataset (nothing is trained, so no seeds and no std).")
    if table.pairs:
        out.append("Δ rows: each method minus its baseline, in points.")
    if best:
        out.append("Bold: the best method in each column.")
    expected = {t: table.expected_seeds(t) for t in table.trainers}
    if any(e.n < expected.get(e.trainer, len(table.seeds)) for e in table.entries
           if e.mean is not None):
        both = " (Base, New and HM all over the seeds with both)" \
            if table.protocol == "base2new" else ""
        out.append(f"(n/{len(table.seeds)}): averaged over n of the {len(table.seeds)} seeds "
                   f"asked for{both} (--allow-partial).")
    if table.grouped:
        out.append("[fp ...]: runs grouped by fingerprint digest (no average row).")
    if table.published:
        out.append("(published): the numbers the method's own paper reports "
                   "(sar_prompt/published/base2new.csv names each source); a published "
                   "average covers the 11 benchmark datasets and is shown only beside an "
                   "average over the same 11.")
    return out


def title_of(table):
    configs = []
    for trainer in table.trainers:
        counts = Counter(table.configs.get(trainer, {}).values())
        if not counts:
            continue
        main = counts.most_common(1)[0][0]
        odd = [f"{dataset_title(d)}: {c}" for d, c in table.configs[trainer].items() if c != main]
        if len(odd) > 3:  # configs per shots (CoOp's few-shot epochs): list them only
            configs.append(f"{trainer} {', '.join(counts)} (by dataset and shots: see the CSV)")
        else:
            configs.append(f"{trainer} {main}" + (f" ({', '.join(odd)})" if odd else ""))
    shots = "shots " + " ".join(map(str, table.shots))
    what = {"base2new": "base-to-new generalisation", "fewshot": "few-shot learning",
            "xd": f"cross-dataset transfer from {dataset_title(table.source)}",
            "dg": f"domain generalisation from {dataset_title(table.source)}"}[table.protocol]
    return (f"{what}: {'; '.join(configs)}; {shots}; seeds "
            f"{' '.join(map(str, table.seeds))}")


# -- renderers ------------------------------------------------------------------------------------
def _flat_header(g):
    return [f"{title} {sub}".strip() for title, subs in g.groups for sub in subs]


def to_markdown(table, with_std=False):
    return grid_markdown(grid(table, with_std))


def grid_markdown(g):
    header = [g.row_title] + _flat_header(g)
    lines = [f"### {g.title}", "", "| " + " | ".join(header) + " |",
             "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    for row in g.rows:
        label = f"*{row.label}*" if row.kind != "method" else row.label
        cells = [(f"**{c.number}**" + c.text()[len(c.number):]) if c.best else c.text()
                 for c in row.cells]
        lines.append("| " + " | ".join([label] + cells) + " |")
    lines += [""] + [f"_{n}_" for n in g.notes]
    return "\n".join(lines)


def to_text(table, with_std=False, width=120):
    return grid_text(grid(table, with_std, best=False), width)


def grid_text(g, width=120):
    """Aligned plain text for a terminal: the column groups in blocks that fit `width`."""
    label_w = max([len(r.label) for r in g.rows] + [6]) + 2
    cell_w = max([len(t) for r in g.rows for t in r.texts] + [6]) + 2
    per_block = max(1, (width - label_w) // (cell_w * max(len(s) for _, s in g.groups)))
    lines = [g.title, ""]
    for block in blocks(len(g.groups), -(-len(g.groups) // per_block)):
        cols = block_columns(g, block)
        top = "".join(g.groups[i][0][:cell_w * len(g.groups[i][1]) - 1]
                      .center(cell_w * len(g.groups[i][1])) for i in block)
        sub = "".join(s.rjust(cell_w) for i in block for s in g.groups[i][1])
        lines += [" " * label_w + top, g.row_title.ljust(label_w) + sub,
                  "-" * (label_w + cell_w * (cols.stop - cols.start))]
        for row in g.rows:
            lines.append(row.label.ljust(label_w) + "".join(t.rjust(cell_w)
                                                            for t in row.texts[cols]))
        lines.append("")
    lines += g.notes
    return "\n".join(lines)


def to_latex(table, with_std=False, label=None, **options):
    """The LaTeX table (sar_prompt/results/latex.py), \\label `label` [tab:<protocol>]."""
    return grid_latex(grid(table, with_std), label=label or latex_label(table), **options)


def _csv_rows(table):
    for kind, rows in (("cell", table.entries), ("average", table.averages),
                       ("delta", table.deltas), ("published", table.published)):
        for e in rows:
            yield {"protocol": table.protocol, "kind": kind, "trainer": e.trainer,
                   "dataset": e.dataset, "shots": e.shots, "metric": e.metric,
                   "mean": "" if e.mean is None else f"{e.mean:.4f}",
                   "std": "" if e.std is None else f"{e.std:.4f}", "n": e.n,
                   "seeds": " ".join(str(s) for s in e.values) if kind == "cell" else "",
                   "zero_shot": int(e.trainer in table.zero_shot),
                   "config": e.config, "fingerprint": e.fingerprint}


CSV_FIELDS = ["protocol", "kind", "trainer", "dataset", "shots", "metric", "mean", "std", "n",
              "seeds", "zero_shot", "config", "fingerprint"]


def to_csv(table):
    """Long CSV: one row per number (cells, averages, deltas, published)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_csv_rows(table))
    return buf.getvalue()


def to_csv_wide(table, with_std=False):
    """Wide CSV: the paper layout's rows, one column per dataset and metric (means; std in
    the long CSV)."""
    return grid_csv_wide(grid(table, with_std))


def grid_csv_wide(g):
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    keys = [f"{key}_{sub}".rstrip("_").replace(" ", "_") for key, (_, subs) in
            zip(g.group_keys, g.groups) for sub in subs]
    writer.writerow(["row", "kind"] + [k.lower().replace(".", "") for k in keys])
    for row in g.rows:
        writer.writerow([row.label, row.kind] + ["" if v is None else f"{v:.4f}"
                                                 for v in row.values])
    return buf.getvalue()


def to_json(table):
    return json.dumps(asdict(table), indent=2, ensure_ascii=False) + "\n"


def latex_label(table):
    """The default \\label of a table's LaTeX: tab:<protocol>."""
    return f"tab:{table.protocol}"


def render(table, fmt, with_std=False, label=None):
    """`table` as `fmt`; `label`: the LaTeX \\label [tab:<protocol>]."""
    if fmt == "text":
        return to_text(table, with_std)
    if fmt == "markdown":
        return to_markdown(table, with_std)
    if fmt == "latex":
        return to_latex(table, with_std, label)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "csv-wide":
        return to_csv_wide(table, with_std)
    if fmt == "json":
        return to_json(table)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


RENDER = {fmt: (lambda t, fmt=fmt: render(t, fmt)) for fmt in FORMATS}


def save(table, folder, name=None, plot=True, with_std=False, label=None):
    """Write <name>.md, .tex, .csv, .wide.csv, .json (and the figures: .png, .pdf, .svg)
    into `folder`; the paths written."""
    from pathlib import Path

    from sar_prompt.io import atomic_write_text

    folder = Path(folder)
    name = name or f"{table.protocol}_" + "_vs_".join(table.trainers)
    paths = []
    try:  # each file whole or not at all (atomic); a refusal is the user's to fix
        for fmt in ("markdown", "latex", "csv", "csv-wide", "json"):
            paths.append(atomic_write_text(folder / f"{name}.{EXTENSIONS[fmt]}",
                                           render(table, fmt, with_std, label)))
        if plot:
            from sar_prompt.results.plots import plot_deltas, plot_table

            paths += plot_table(table, folder / name) or []
            if table.deltas and table.protocol == "base2new":
                paths += plot_deltas(table, folder / f"{name}_delta") or []
    except OSError as exc:
        from sar_prompt.errors import OutputError, os_error_message

        message = os_error_message(exc)
        if message is None:
            raise
        kept = f" ({', '.join(str(p) for p in paths)} were written in full)" if paths else ""
        raise OutputError(f"cannot save the table in {folder}: {message}{kept}") from exc
    return paths


def problems_text(table):
    lines = [f"{len(table.problems)} run(s) are not finished:"]
    for p in table.problems:
        detail = f" ({p['detail']})" if p["detail"] else ""
        log = f"; log: {p['log']}" if p.get("log") else ""
        disk = f"; on disk: {p['on_disk']}" if p.get("on_disk") else ""
        lines.append(f"  {p['status']:<11} {p['run']}: {p['path']}{detail}{log}{disk}")
    return "\n".join(lines)
