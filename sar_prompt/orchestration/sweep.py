"""Sweeps: the same benchmark at several settings, one table row per setting (a *point*).

    sar-prompt run base2new CoOpSAR --sweep TRAINER.SAR.WEIGHT 0,1,5
    SWEEP="TRAINER.SAR.WEIGHT=0,5;OPTIM.MAX_EPOCH=5,10" bash scripts/base2new.sh dtd CoOpSAR
    sar-prompt results OUTPUT/base2new --trainer CoOpSAR --sweep

Several --sweep options make every combination. Each point is a benchmark of its own, its
runs in config folders named by its overrides (`vit_b16_ctxv1__SAR.WEIGHT=5`, see
identity.py; a value equal to the default names nothing: the run without it), and all
points' jobs share one queue. The sweep table, from the runs on disk:
sar_prompt/results/sweep_table.py.
"""
import itertools
import os
import sys

from sar_prompt.errors import ConfigError
from sar_prompt.results.sweep_table import render, save, sweep_rows, sweep_table, table_name
from sar_prompt.runs.identity import canonical, override_tag


# -- points ----------------------------------------------------------------------------------
def parse_env(text):
    """SWEEP="KEY=V1,V2;KEY2=V3" -> [[KEY, "V1,V2"], [KEY2, "V3"]]."""
    out = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        key, sep, values = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"SWEEP={text!r}: write KEY=V1,V2 pairs separated by ';' "
                              "(e.g. SWEEP=\"TRAINER.SAR.WEIGHT=0,5\").")
        out.append([key.strip(), values])
    return out


def points(sweeps, opts=()):
    """[[KEY, VALUE, KEY2, VALUE2, ...]] of every combination of `sweeps` [[KEY, "V1,V2"]]."""
    keys, axes = [], []
    given = set(opts[0::2])
    for key, values in sweeps:
        vals = [v.strip() for v in str(values).split(",") if v.strip()]
        if not vals:
            raise ConfigError(f"--sweep {key}: no values given; write --sweep {key} V1,V2.")
        if key in keys:
            raise ConfigError(f"--sweep {key} is given twice; give all its values once: "
                              f"--sweep {key} V1,V2,V3.")
        if key in given:
            raise ConfigError(f"{key} is both swept and set as a trailing option; drop one.")
        if len({canonical(v) for v in vals}) < len(vals):
            raise ConfigError(f"--sweep {key} {values}: a value is repeated.")
        keys.append(key)
        axes.append(vals)
    return [[w for pair in zip(keys, combo) for w in pair] for combo in itertools.product(*axes)]


def sweep_benchmarks(args, make):
    """[(label, Benchmark)] of the command line: one per sweep point, or the one benchmark
    (label "") without a sweep. `make(args, point)` builds a point's Benchmark."""
    sweeps = args.sweep or parse_env(os.environ.get("SWEEP", ""))
    args.sweep = sweeps or None
    if not sweeps:
        return [("", make(args, ()))]
    return [(override_tag(point), make(args, tuple(point))) for point in points(sweeps, args.opts)]


def folder_note(run):
    """What the dry run says about a folder that is not free for the run: a link in it,
    busy, or holding another config's run; "" otherwise."""
    from sar_prompt.errors import LinkRefused
    from sar_prompt.runs.lock import describe, holder, refuse_links
    from sar_prompt.orchestration.runner import folder_clash

    try:
        refuse_links(run.output_dir)
    except LinkRefused as exc:
        return f"REFUSED: {exc.filename} is a symbolic link  "
    busy = holder(run.output_dir)
    if busy:
        return f"busy: {describe(busy)}  "
    clash = folder_clash(run, light=True)
    if clash is not None:
        return f"ANOTHER CONFIG'S FOLDER ({clash.summary()}); --move-aside to redo  "
    return ""



# -- the table after a sweep ------------------------------------------------------------------
def final_sweep_table(bench, points, out=None):
    """bench.py's table after a sweep: one row per point, printed and (with ± std over seeds)
    saved under the protocol folder's tables/; the rows as data."""
    out = out or sys.stdout
    point_folders = [(label, b.folder_for) for label, b in points]
    table = sweep_table(bench.root, bench.protocol, bench.trainer, point_folders,
                        bench.datasets, bench.seeds, bench.shots, bench.source)
    print(file=out)
    print(render(table, bench.trainer, "markdown"), file=out)
    paths = save(table, bench.trainer, bench.root / "tables",
                 table_name(bench.protocol, bench.trainer))
    print(f"sweep table: {', '.join(str(p) for p in paths)}", file=out)
    return sweep_rows(table, bench.trainer)
