"""The run's record (environment, options, every raw timing) and its markdown tables."""
import os
import platform
import sys
from datetime import datetime, timezone

import torch

SCHEMA = "sar-prompt/benchmark"
VERSION = 1


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(setup, opts, argv):
    return {
        "schema": SCHEMA, "version": VERSION, "command": ["python", "-m", "benchmarks", *argv],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arch": setup.arch, "device": setup.device,
        "gpu": torch.cuda.get_device_name() if setup.device == "cuda" else None,
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "repeats": opts.repeats, "warmup": opts.warmup,
    }


def _ms(s):
    return f"{s['median']:.1f} ({s['min']:.1f}..{s['max']:.1f})"


def _x(r, key="median"):
    """A ratio record's `key` ("median", "fastest" or "work"), or "-" where not recorded."""
    return f"{r[key]:.2f}" if key in r else "-"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def steps_table(rec):
    rows = []
    for m, g in rec["methods"].items():
        s, r = g["summary_ms"], g["ratios"]
        sar, floor = r[f"{m}SAR/{m}"], r[f"{m}/floor"]
        rows.append([m, g["batch_size"], g["classes"], g["novel_per_step"], g["precision"],
                     _ms(s[m]), _ms(s[m + "SAR"]), _ms(s[f"reference-way {m}"]),
                     _ms(s["image encoder"]), _x(sar), _x(sar, "fastest"), _x(sar, "work"),
                     _x(r[f"{m}SAR/reference-way {m}"]), _x(r[f"speed-up {m}"]),
                     _x(floor), _x(floor, "work"), _x(r[f"{m}SAR/floor"])])
    return _table(["method X", "batch", "classes", "novel/step", "prec", "X ms",
                   "XSAR ms", "ref-way X ms", "image enc. ms", "XSAR/X", "XSAR/X fastest",
                   "XSAR/X work",
                   "XSAR/ref-way X", "speed-up ref/X", "X/floor", "X/floor work",
                   "XSAR/floor"], rows)


def text_table(rec):
    rows = [[m, g["classes"], f"{g['positions']} of {g['context']}", _ms(g["summary_ms"]["ours"]),
             _ms(g["summary_ms"]["full 77 positions"]), _x(g["ratios"]["speed-up"]),
             f"{g['max_abs_difference']:.1e}"] for m, g in rec["methods"].items()]
    return _table(["method", "prompts", "positions", "ours ms", "full 77 ms", "speed-up",
                   "max abs diff"], rows)


def eval_table(rec):
    rows = [[m, g["images"], g["classes"], g["batch_size"], g["precision"],
             _ms(g["summary_ms"][m]), _ms(g["summary_ms"][f"reference-way {m}"]),
             _x(g["ratios"]["speed-up"])] for m, g in rec["methods"].items()]
    return _table(["method", "images", "classes", "batch", "prec", "ours ms", "ref-way ms",
                   "speed-up"], rows)


def growth_table(rec):
    rows = [["CoOp", "-", _ms(rec["summary_ms"]["CoOp"]), "1", "1", "1"]]
    for name, k in rec["novel_per_step"].items():
        r = rec["ratios"][f"{name}/CoOp"]
        rows.append([name, k, _ms(rec["summary_ms"][name]), _x(r), _x(r, "fastest"),
                     _x(r, "work")])
    return _table(["variant", "novel/step", "step ms", "/CoOp", "/CoOp fastest",
                   "/CoOp work"], rows)


def _mib(v):
    return "-" if v is None else f"{v:.0f}"


def memory_table(rec):
    rows = []
    for c in rec["cases"]:
        if c["status"] != "ok":
            rows.append([c["case"], c["status"]] + ["-"] * 9)
            continue
        rows.append([c["case"], "ok", c["base_classes"], c["novel_classes"], c["batch_size"],
                     _mib(c["rss_before_step_mib"]), _mib(c.get("step_peak_rss_mib")),
                     _mib(c.get("step_rss_growth_mib")), _mib(c["peak_rss_mib"]),
                     _mib(c.get("cuda_peak_step_mib")),
                     ", ".join(f"{v:.6f}" for v in c["losses"])])
    losses = rec["losses"]
    note = (f"\nSAR losses: identical={losses['identical']}, "
            f"abs difference={losses['abs_difference']}")
    return _table(["case", "status", "base", "novel", "batch", "RSS before step MiB",
                   "step peak RSS MiB", "step adds MiB", "process peak RSS MiB",
                   "CUDA step peak MiB", "losses (steps 1, 2)"], rows) + note


def cli_table(rec):
    rows = []
    for label, s in rec["summary_ms"].items():
        r = rec["ratios"].get(f"{label} / start-up")
        rows.append([f"`{label}`", _ms(s), _x(r) if r else "1",
                     ",".join(map(str, rec["exit_codes"][label])),
                     {True: "yes", False: "NO"}.get(rec["meets_target"].get(label), "-")])
    return _table(["command", "wall ms", "x start-up", "exit", f"< {rec['target_s']} s"], rows)


TABLES = {"steps": steps_table, "text": text_table, "eval": eval_table,
          "sar_growth": growth_table, "memory": memory_table, "cli": cli_table}


def markdown(record):
    env = record
    head = (f"# sar-prompt benchmarks: {env['arch']} on {env['device']}"
            f"{' (' + env['gpu'] + ')' if env['gpu'] else ''}, torch {env['torch']}, "
            f"{env['threads']} threads, {env['cpu']}, {env['date']}\n"
            f"times: median (min..max) of {env['repeats']} rounds; ratios: median of "
            "per-round ratios; fastest: ratio of the fastest rounds; work: the same ratio of "
            "floating-point operations")
    parts = [head]
    for name, rec in record["sections"].items():
        parts.append(f"## {name}\n\n{TABLES[name](rec)}")
    return "\n\n".join(parts) + "\n"


def write(path, record):
    from sar_prompt.io import atomic_write_json

    atomic_write_json(path, record)
    print(f"[benchmarks] wrote {path}", file=sys.stderr)
