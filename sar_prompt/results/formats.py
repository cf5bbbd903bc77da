"""Format: a Table as text, markdown, LaTeX (booktabs), CSV (long and wide) and JSON.

Every layout is the paper's: methods as rows, datasets (the reference order, then the
average) as column groups, Base / New / HM under each for base-to-new (shots for few-shot,
one column for transfer). A delta row follows each SAR variant (XSAR - X), and rows against
zero-shot CLIP close the table when it is there. Means by default; `with_std` adds ± the
population std over seeds. `Grid` is that layout once; each format renders it.
"""
import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from sar_prompt.runs.protocols import dataset_title
from sar_prompt.results.aggregate import AVERAGE, METRICS, ZERO_SHOT, delta_name

METRIC_TITLES = {"base": "Base", "new": "New", "hm": "HM", "accuracy": "Acc."}
DELTA_METRICS = {"base2new": ("new", "hm")}  # the deltas shown (all in CSV / JSON)
FORMATS = ("text", "markdown", "latex", "csv", "csv-wide", "json")
EXTENSIONS = {"text": "txt", "markdown": "md", "latex": "tex", "csv": "csv",
              "csv-wide": "wide.csv", "json": "json"}


# -- the paper layout ---------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    cells: list                  # text, one per column (groups x subcolumns)
    values: list                 # the numbers behind them (None where empty)
    kind: str = "method"         # method | delta | published


@dataclass
class Grid:
    title: str
    groups: list                 # [(group title, [column titles])]
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    group_keys: list = field(default_factory=list)  # dataset key of each group


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


def _cell_text(entry, expected, with_std):
    if entry is None or entry.mean is None:
        return "-"
    text = f"{entry.mean:.2f}"
    if with_std and entry.std is not None:
        text += f" ± {entry.std:.2f}"
    if entry.dataset != AVERAGE and entry.n < expected:
        text += f" ({entry.n}/{expected})"
    return text


def trainer_label(table, trainer):
    return f"{trainer} (zero-shot)" if trainer in table.zero_shot else trainer


def grid(table, with_std=False):
    columns = _columns(table)
    g = Grid(title_of(table), [(title, [c[0] for c in subs]) for _, title, subs in columns],
             group_keys=[d for d, _, _ in columns])
    shown_deltas = DELTA_METRICS.get(table.protocol, METRICS[table.protocol])

    def method_rows(trainer):
        groups = sorted({grp for d in table.datasets for k in table.shots
                         for grp in table.groups(trainer, d, k)})
        for group in groups:
            cells, values = [], []
            for d, _, subs in columns:
                rows = table.averages if d == AVERAGE else table.entries
                for _, k, metric in subs:
                    e = table.lookup(rows, trainer, d, k, metric, "" if d == AVERAGE else group)
                    cells.append(_cell_text(e, table.expected_seeds(trainer),
                                            with_std and d != AVERAGE))
                    values.append(None if e is None else e.mean)
            label = trainer_label(table, trainer) + (f" [fp {group}]" if group else "")
            g.rows.append(Row(label, cells, values))

    def published_row(trainer):
        rows = [e for e in table.published if e.trainer == trainer]
        if not rows:
            return
        cells, values = [], []
        for d, _, subs in columns:
            for _, k, metric in subs:
                e = next((p for p in rows if (p.dataset, p.metric) == (d, metric)), None)
                cells.append("-" if e is None or e.mean is None else f"{e.mean:.2f}")
                values.append(None if e is None else e.mean)
        g.rows.append(Row(f"{trainer} (published)", cells, values, "published"))

    def delta_row(trainer, baseline, kind="delta"):
        name = delta_name(trainer, baseline)
        cells, values = [], []
        for d, _, subs in columns:
            for _, k, metric in subs:
                e = table.lookup(table.deltas, name, d, k, metric)
                shown = e is not None and metric in shown_deltas
                cells.append(f"{e.mean:+.2f}" if shown else ("" if metric not in shown_deltas
                                                             else "-"))
                values.append(e.mean if shown else None)
        g.rows.append(Row(f"Δ {trainer} − {baseline}", cells, values, kind))

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
    g.notes = notes(table, with_std)
    return g


def notes(table, with_std):
    out = []
    if table.protocol == "base2new":
        out.append("HM: harmonic mean of the mean base and mean new accuracy"
                   + (" (± std of the per-seed HMs)" if with_std else "")
                   + "; Average: mean over datasets, its HM from the averaged base and new.")
    out.append("Mean over seeds " + " ".join(map(str, table.seeds))
               + (" ± population std" if with_std else "") + ".")
    if table.zero_shot:
        out.append(f"{', '.join(table.zero_shot)}: zero-shot, one evaluation per dataset "
                   "(nothing is trained, so no seeds and no std).")
    if table.pairs and table.protocol == "base2new":
        out.append("Δ rows: New and HM of each method minus its baseline (points).")
    expected = {t: table.expected_seeds(t) for t in table.trainers}
    if any(e.n < expected.get(e.trainer, len(table.seeds)) for e in table.entries
           if e.mean is not None):
        out.append(f"(n/{len(table.seeds)}): averaged over n of the {len(table.seeds)} seeds "
                   "asked for (--allow-partial).")
    if table.grouped:
        out.append("[fp ...]: runs grouped by fingerprint digest (no average row).")
    if table.published:
        out.append("(published): the numbers the method's own paper reports "
                   "(sar_prompt/published/base2new.csv names each source).")
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
    g = grid(table, with_std)
    header = ["Method"] + _flat_header(g)
    lines = [f"### {g.title}", "", "| " + " | ".join(header) + " |",
             "|:---|" + "|".join("---:" for _ in header[1:]) + "|"]
    for row in g.rows:
        label = f"*{row.label}*" if row.kind != "method" else row.label
        lines.append("| " + " | ".join([label] + row.cells) + " |")
    lines += [""] + [f"_{n}_" for n in g.notes]
    return "\n".join(lines)


def _blocks(g, fits):
    """Split the column groups into consecutive blocks, each as many groups as `fits(n)`
    allows (at least one)."""
    blocks, start = [], 0
    while start < len(g.groups):
        n = 1
        while start + n < len(g.groups) and fits(g.groups[start:start + n + 1]):
            n += 1
        blocks.append(range(start, start + n))
        start += n
    return blocks


def _block_columns(g, block):
    first = sum(len(subs) for _, subs in g.groups[:block.start])
    width = sum(len(g.groups[i][1]) for i in block)
    return slice(first, first + width)


def to_text(table, with_std=False, width=120):
    """Aligned plain text for a terminal: the column groups in blocks that fit `width`."""
    g = grid(table, with_std)
    label_w = max([len(r.label) for r in g.rows] + [6]) + 2
    cell_w = max([len(c) for r in g.rows for c in r.cells] + [6]) + 2

    def fits(groups):
        return label_w + cell_w * sum(len(s) for _, s in groups) <= width

    lines = [g.title, ""]
    for block in _blocks(g, fits):
        cols = _block_columns(g, block)
        top = "".join(g.groups[i][0][:cell_w * len(g.groups[i][1]) - 1]
                      .center(cell_w * len(g.groups[i][1])) for i in block)
        sub = "".join(s.rjust(cell_w) for i in block for s in g.groups[i][1])
        lines += [" " * label_w + top, "Method".ljust(label_w) + sub,
                  "-" * (label_w + cell_w * (cols.stop - cols.start))]
        for row in g.rows:
            lines.append(row.label.ljust(label_w) + "".join(c.rjust(cell_w)
                                                            for c in row.cells[cols]))
        lines.append("")
    lines += g.notes
    return "\n".join(lines)


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "$": r"\$", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}
LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$"}


def latex_escape(text):
    out = "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, command in LATEX_SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def _latex_number(text):
    """A cell: signs as math minus, ± as $\\pm$."""
    if text in ("", "-"):
        return "--" if text == "-" else ""
    return latex_escape(text.replace("-", "−") if text[0] in "+-" else text)


def to_latex(table, with_std=False, groups_per_block=None, resize=True):
    """A booktabs table ready to paste (needs \\usepackage{booktabs}, and graphicx for
    `resize`). Wide tables are split into stacked blocks of `groups_per_block` datasets
    (4, or 2 with the std), each scaled to the text width with `resize`."""
    g = grid(table, with_std)
    groups_per_block = groups_per_block or (2 if with_std else 4)
    blocks = _blocks(g, lambda groups: len(groups) <= groups_per_block)
    out = ["% " + latex_escape(g.title).replace("\n", " "),
           "% requires \\usepackage{booktabs}" + (" and \\usepackage{graphicx}" if resize else ""),
           "\\begin{table*}[t]", "\\centering", "\\small"]
    for b, block in enumerate(blocks):
        cols = _block_columns(g, block)
        ncols = cols.stop - cols.start
        lines = [f"\\begin{{tabular}}{{l{'r' * ncols}}}", "\\toprule"]
        heads, rules, col = [], [], 2
        for i in block:
            title, subs = g.groups[i]
            if len(subs) > 1 or subs[0]:
                heads.append(f"\\multicolumn{{{len(subs)}}}{{c}}{{{latex_escape(title)}}}")
                rules.append(f"\\cmidrule(lr){{{col}-{col + len(subs) - 1}}}")
            else:
                heads.append(latex_escape(title))
            col += len(subs)
        has_subs = any(len(g.groups[i][1]) > 1 or g.groups[i][1][0] for i in block)
        lines.append(("Method" if not has_subs else "") + " & " + " & ".join(heads) + " \\\\")
        if has_subs:
            lines.append(" ".join(rules))
            lines.append("Method & " + " & ".join(latex_escape(s) for i in block
                                                  for s in g.groups[i][1]) + " \\\\")
        lines.append("\\midrule")
        previous = None
        for row in g.rows:
            if previous == "delta" and row.kind == "method":
                lines.append("\\addlinespace")
            if row.kind == "zero-shot delta" and previous != row.kind:
                lines.append("\\midrule")
            label = latex_escape(row.label)
            if row.kind != "method":
                label = f"\\quad\\textit{{{label}}}"
            lines.append(" & ".join([label] + [_latex_number(c) for c in row.cells[cols]])
                         + " \\\\")
            previous = row.kind
        lines += ["\\bottomrule", "\\end{tabular}"]
        if resize:
            lines = ["\\resizebox{\\textwidth}{!}{%"] + lines + ["}"]
        out += lines
        if b < len(blocks) - 1:
            out.append("\\\\[0.8em]")
    out.append("\\caption{" + latex_escape(" ".join(g.notes)) + "}")
    out += ["\\end{table*}", ""]
    return "\n".join(out)


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
    g = grid(table, with_std)
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


def render(table, fmt, with_std=False):
    if fmt == "text":
        return to_text(table, with_std)
    if fmt == "markdown":
        return to_markdown(table, with_std)
    if fmt == "latex":
        return to_latex(table, with_std)
    if fmt == "csv":
        return to_csv(table)
    if fmt == "csv-wide":
        return to_csv_wide(table, with_std)
    if fmt == "json":
        return to_json(table)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


RENDER = {fmt: (lambda t, fmt=fmt: render(t, fmt)) for fmt in FORMATS}


def save(table, folder, name=None, plot=True, with_std=False):
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
                                           render(table, fmt, with_std)))
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
