"""A result table as LaTeX: one booktabs `table*` a two-column paper can print as it is.

Methods are rows; the column groups (datasets, then the average) are split into stacked
blocks of one tabular, as many blocks as it takes for the table to fit the page's text
width at \\footnotesize: the layout is chosen from the widths and heights its cells will
have (estimated here, for Computer Modern), so a small table stays small and a wide one is
split rather than shrunk. A box that still comes out wider than \\textwidth (a narrower
template) is scaled down to it, never up. Std is a subscript (82.10\\textsubscript{±0.42}),
each column's best method is bold, the delta rows are italic, and a row with nothing in a
block (a published average) is left out of that block. Needs booktabs and graphicx.
"""
import re

from sar_prompt.errors import ConfigError

# A two-column paper's page (CVPR, ICCV, IEEE, ACM: 6.9-7.2 in wide, ~9 in high), in pt.
TEXT_WIDTH = 500.0
TABLE_HEIGHT = 560.0   # what a table* may fill, its caption aside
TABCOLSEP = 3.5
# Computer Modern at \footnotesize (8 pt): widths in pt, measured with pdflatex; a table's
# size comes out within 3% (width) and 2% (height) of pdflatex's (tests/test_paper_tables.py).
DIGIT, POINT, SIGN, SPACE, LOWER, UPPER = 4.25, 2.4, 6.6, 2.85, 4.4, 6.2
NARROW, WIDE = 2.9, 7.5     # the letters of these widths:
NARROW_CHARS, WIDE_CHARS = set("fijlrstI()_"), set("mwMW%#&")
SUB_DIGIT, SUB_POINT, SUB_PM = 3.7, 2.0, 6.2   # \textsubscript: about 6 pt
BOLD = 1.15
# Heights (pt): a row is \footnotesize's \baselineskip; booktabs' rules with the space
# above and below them (its defaults, set at 10 pt).
ROW = 9.5
TOP, MID, BOTTOM, HEAVY_MID, CMID = 3.6, 5.0, 2.5, 5.3, 4.8
LINESPACE = 2.0                                # \addlinespace[2pt]
QUAD = 8.5                                     # the indent of delta rows (\quad)

ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_",
           "{": r"\{", "}": r"\}", "$": r"\$", "~": r"\textasciitilde{}",
           "^": r"\textasciicircum{}"}
SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$"}
LABEL_CHARS = re.compile(r"[A-Za-z0-9:._/+-]+")


def escape(text):
    """Text as LaTeX prints it: its special characters escaped, ± Δ − as math."""
    out = "".join(ESCAPES.get(ch, ch) for ch in str(text))
    for symbol, command in SYMBOLS.items():
        out = out.replace(symbol, command)
    return out


def check_label(label):
    if not LABEL_CHARS.fullmatch(label):
        raise ConfigError(f"LaTeX label {label!r}: use letters, digits and : . _ / + - only "
                          "(e.g. tab:base2new).")
    return label


STD = "\\textsubscript{{$\\pm${:.2f}}}"


def _number(cell, std_column):
    """A cell's LaTeX: the mean (bold when best), ± std as a subscript (in a column with
    stds, an invisible one where there is none, so the means line up), a seed-count mark."""
    if cell.mean is None:
        return "--" + (f"\\phantom{{{STD.format(0)}}}" if std_column else "")
    text = cell.number.replace("-", "$-$")
    if cell.best:
        text = f"\\textbf{{{text}}}"
    if cell.std is not None:
        text += STD.format(cell.std)
    elif std_column:
        text += f"\\phantom{{{STD.format(0)}}}"
    if cell.mark:
        text += f"\\textsuperscript{{{escape(cell.mark)}}}"
    return text


def _width(text, bold=False):
    """Estimated width (pt) of plain text at \\footnotesize."""
    w = sum(DIGIT if ch.isdigit() else POINT if ch in ".,:;" else SIGN if ch in "+−-±Δ"
            else SPACE if ch == " " else NARROW if ch in NARROW_CHARS
            else WIDE if ch in WIDE_CHARS else UPPER if ch.isupper() else LOWER
            for ch in text)
    return w * (BOLD if bold else 1.0)


def _cell_width(cell):
    if cell.mean is None:
        return _width("--")
    w = _width(cell.number, cell.best)
    if cell.std is not None:
        w += SUB_PM + sum(SUB_POINT if ch == "." else SUB_DIGIT for ch in f"{cell.std:.2f}")
    if cell.mark:
        w += len(cell.mark) * SUB_DIGIT
    return w


def _shown(row, cols):
    """Whether a row has anything to show in a block (method rows always do)."""
    return row.kind == "method" or any(c.mean is not None for c in row.cells[cols])


def _block_rows(g, cols):
    """(row, what goes above it: None, "space" or "rule") for the rows a block shows: a
    little space before a method after the delta rows, a rule above zero-shot deltas."""
    out, previous = [], None
    for row in g.rows:
        if not _shown(row, cols):
            continue
        above = None
        if previous == "delta" and row.kind == "method":
            above = "space"
        if row.kind == "zero-shot delta" and previous != row.kind:
            above = "rule"
        out.append((row, above))
        previous = row.kind
    return out


def blocks(n_groups, n_blocks):
    """`n_groups` column groups in `n_blocks` consecutive blocks of (nearly) equal size."""
    size, extra = divmod(n_groups, n_blocks)
    out, start = [], 0
    for b in range(n_blocks):
        width = size + (b < extra)
        out.append(range(start, start + width))
        start += width
    return [b for b in out if len(b)]


def block_columns(g, block):
    first = sum(len(subs) for _, subs in g.groups[:block.start])
    width = sum(len(g.groups[i][1]) for i in block)
    return slice(first, first + width)


def _size(g, layout):
    """(width, height) in pt the tabular of `layout` (a list of blocks) will have."""
    ncols = max(block_columns(g, b).stop - block_columns(g, b).start for b in layout)
    widths = [0.0] * ncols
    label_w = _width(g.row_title)
    height = TOP + BOTTOM + HEAVY_MID * (len(layout) - 1)
    for block in layout:
        cols = block_columns(g, block)
        at = 0
        for i in block:
            title, subs = g.groups[i]
            group_w = _width(title) + 2 * TABCOLSEP
            for j, sub in enumerate(subs):
                w = max([_width(sub)] + [_cell_width(r.cells[cols.start + at + j])
                                         for r in g.rows])
                widths[at + j] = max(widths[at + j], w)
            share = sum(widths[at:at + len(subs)]) + 2 * TABCOLSEP * (len(subs) - 1)
            if group_w > share + 2 * TABCOLSEP:  # a long title widens its columns
                for j in range(len(subs)):
                    widths[at + j] += (group_w - share - 2 * TABCOLSEP) / len(subs)
            at += len(subs)
        rows = _block_rows(g, cols)
        label_w = max([label_w] + [_width(r.label) + (QUAD if r.kind != "method" else 0)
                                   for r, _ in rows])
        has_subs = any(s for i in block for s in g.groups[i][1])
        height += (2 * ROW + CMID if has_subs else ROW) + MID + len(rows) * ROW
        height += sum({"space": LINESPACE, "rule": CMID}.get(above, 0) for _, above in rows)
    width = label_w + sum(widths) + 2 * TABCOLSEP * (ncols + 1)
    return width, height


def choose_layout(g, text_width=TEXT_WIDTH, table_height=TABLE_HEIGHT):
    """The blocks of the layout that fits `text_width` x `table_height` with the fewest
    blocks, else the one that needs the least scaling down."""
    best = None
    for n in range(1, len(g.groups) + 1):
        layout = blocks(len(g.groups), n)
        width, height = _size(g, layout)
        scale = min(1.0, text_width / width, table_height / height)
        if scale >= 1.0:
            return layout
        if best is None or scale > best[0] + 1e-9:
            best = (scale, layout)
    return best[1]


def grid_latex(g, groups_per_block=None, label="", caption=True):
    """A `table*` of the grid `g` (formats.grid). `groups_per_block` fixes the blocks' size
    (default: chosen to fit the page); `label`: the \\label (none when empty)."""
    if groups_per_block:
        layout = blocks(len(g.groups), -(-len(g.groups) // groups_per_block))
    else:
        layout = choose_layout(g)
    ncols = max(block_columns(g, b).stop - block_columns(g, b).start for b in layout)
    out = ["% " + " ".join(g.title.split()),
           "% requires \\usepackage{booktabs} and \\usepackage{graphicx}",
           "\\begin{table*}[t]", "\\centering", "\\footnotesize",
           f"\\setlength{{\\tabcolsep}}{{{TABCOLSEP:g}pt}}",
           "% scaled down only if wider than the text",
           "\\resizebox{\\ifdim\\width>\\textwidth\\textwidth\\else\\width\\fi}{!}{%",
           f"\\begin{{tabular}}{{l{'r' * ncols}}}", "\\toprule"]
    for b, block in enumerate(layout):
        cols = block_columns(g, block)
        if b:
            out.append("\\midrule[\\heavyrulewidth]")
        heads, rules, col = [], [], 2
        for i in block:
            title, subs = g.groups[i]
            if len(subs) > 1 or subs[0]:
                heads.append(f"\\multicolumn{{{len(subs)}}}{{c}}{{{escape(title)}}}")
                rules.append(f"\\cmidrule(lr){{{col}-{col + len(subs) - 1}}}")
            else:
                heads.append(f"\\multicolumn{{1}}{{c}}{{{escape(title)}}}")
            col += len(subs)
        has_subs = any(s for i in block for s in g.groups[i][1])
        out.append(("" if has_subs else escape(g.row_title)) + " & " + " & ".join(heads)
                   + " \\\\")
        if has_subs:
            out.append(" ".join(rules))
            out.append(escape(g.row_title) + " & " + " & ".join(
                escape(s) for i in block for s in g.groups[i][1]) + " \\\\")
        out.append("\\midrule")
        with_std = {j for j in range(cols.stop - cols.start)
                    if any(r.cells[cols.start + j].std is not None for r in g.rows)}
        for row, above in _block_rows(g, cols):
            if above == "space":
                out.append(f"\\addlinespace[{LINESPACE:g}pt]")
            elif above == "rule":
                out.append("\\cmidrule(lr){1-" + str(ncols + 1) + "}")
            text = escape(row.label)
            if row.kind != "method":
                text = f"\\quad\\textit{{{text}}}"
            out.append(" & ".join([text] + [_number(c, j in with_std)
                                            for j, c in enumerate(row.cells[cols])]) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}}"]
    if caption:
        out.append("\\caption{" + escape(" ".join(g.notes)) + "}")
    if label:
        out.append(f"\\label{{{check_label(label)}}}")
    out += ["\\end{table*}", ""]
    return "\n".join(out)
