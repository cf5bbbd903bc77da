"""Start-up time of sar_prompt's command-line tools: each a fresh process, timed from
start to exit, interleaved with `python -c pass` (the interpreter's own start-up)."""
import subprocess
import sys
import tempfile

from . import timing

TARGET_S = 1.5  # what a user waits for `--help` at most
BASELINE = "python -c pass"
COMMANDS = {
    "python -m sar_prompt.results --help": ["-m", "sar_prompt.results", "--help"],
    "python -m sar_prompt.data check --help": ["-m", "sar_prompt.data", "check", "--help"],
    "python -m sar_prompt.novel validate --help": ["-m", "sar_prompt.novel", "validate", "--help"],
    "python -m sar_prompt.results EMPTY_DIR": ["-m", "sar_prompt.results", "{empty}"],
}


def section(setup, opts):
    exit_codes = {}
    with tempfile.TemporaryDirectory(prefix="empty-", dir=setup.workdir) as empty:
        def process(label, args):
            argv = [sys.executable] + [a.format(empty=empty) for a in args]

            def run():
                done = subprocess.run(argv, cwd=setup.workdir, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
                exit_codes.setdefault(label, set()).add(done.returncode)
            return run

        variants = {BASELINE: process(BASELINE, ["-c", "pass"])}
        variants.update({label: process(label, args) for label, args in COMMANDS.items()})
        times = timing.rounds(variants, opts.cli_repeats, opts.warmup, desc="cli")
    ratios = [timing.labelled(f"{label} / start-up", times, label, BASELINE,
                              "process time / the interpreter's own start-up")
              for label in COMMANDS]
    record = timing.group(times, ratios, target_s=TARGET_S,
                          exit_codes={k: sorted(v) for k, v in exit_codes.items()})
    record["meets_target"] = {label: record["summary_ms"][label]["median"] < TARGET_S * 1000
                              for label in COMMANDS}
    return record
