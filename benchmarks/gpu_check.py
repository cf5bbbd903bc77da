"""One prepared check of what only a GPU shows, for the day one is lent (run from the
repository root; benchmarks/README.md, "GPU check"):

    bash benchmarks/gpu_check.sh                      # on a CUDA machine (made for < 8 min)
    bash benchmarks/gpu_check.sh --device cpu --quick # the dry run CI does (tiny CLIP)

1. precision: every method and SAR variant a few training steps in fp32, fp16 and amp on
   the device and in fp32 on the CPU (benchmarks/precision_check.py);
2. resume: CoOpSAR trained by train.py on the demo data in fp16 and amp, once whole and
   once resumed from a mid-run checkpoint, with deterministic CUDA kernels
   (SAR_PROMPT_DETERMINISTIC=1): the final prompts must be equal bit for bit and
   the resume recorded as exact;
3. benchmarks: `python -m benchmarks --sections steps eval memory` on the device.
One JSON record (schema sar-prompt/gpu-check), written atomically after each part, so a run
stopped midway keeps what it finished; exit status 1 when a check fails, 2 on bad options.
On a CPU the half-precision paths run with SAR_PROMPT_CPU_HALF=1, which this sets.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from .build import METHODS, REPO, Setup

SCHEMA = "sar-prompt/gpu-check"
PARTS = ("precision", "resume", "benchmarks")
DEFAULT_ULPS = 16  # a guard against gross errors; the record keeps every measured value


def build_parser():
    p = argparse.ArgumentParser(prog="bash benchmarks/gpu_check.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true",
                   help="a short dry run: tiny CLIP, 2 steps, CoOp only in the benchmarks")
    p.add_argument("--json", default="gpu_check.json", metavar="PATH",
                   help="where to write the record (default gpu_check.json)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per precision run (default 3; --quick 2)")
    p.add_argument("--ulps", type=float, default=DEFAULT_ULPS,
                   help=f"largest difference from fp32 that passes, in fp16 units in the last "
                        f"place of the loss (default {DEFAULT_ULPS})")
    return p


def _write(path, record):
    from sar_prompt.io import atomic_write_json

    atomic_write_json(path, record)


def _env(device, only_added=False, deterministic=False):
    """The environment of a child run: the half-precision paths on a CPU, deterministic CUDA
    kernels if asked (an exact resume on a GPU needs them), the repository importable
    (benchmarks is not installed)."""
    added = {"SAR_PROMPT_CPU_HALF": "1"} if device == "cpu" else {}
    if deterministic:
        added["SAR_PROMPT_DETERMINISTIC"] = "1"
    if only_added:
        return added
    paths = [str(REPO)] + [str(Path(p).resolve()) for p in
                           os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, **added, "PYTHONPATH": os.pathsep.join(paths)}


class _Console(io.StringIO):
    """A run's console in memory, left open when Dassl's logger closes its console (upstream
    Dassl's Logger closes it when it is collected)."""

    def close(self):
        pass


def resume_section(device, workdir, weights, resolution, quick):
    """CoOpSAR through train.py on the demo data, whole and resumed, per precision."""
    import torch

    from sar_prompt.orchestration.demo import prepare
    from sar_prompt.orchestration.worker import run_one
    from sar_prompt.train import main as train_main

    data = prepare(workdir / "data").parent
    epochs, resume_at = (2, 1) if quick else (4, 2)
    out, checks = {}, []
    for precision in ("fp16",) if quick else ("fp16", "amp"):
        def train(folder):
            argv = [sys.executable, str(REPO / "train.py"), "--root", str(data), "--seed", "1",
                    "--trainer", "CoOpSAR", "--output-dir", str(folder),
                    "--config-file", str(REPO / "configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"),
                    "--dataset-config-file", str(REPO / "configs/datasets/demo.yaml"),
                    "MODEL.BACKBONE.PATH", str(weights), "INPUT.SIZE", f"({resolution}, "
                    f"{resolution})", "USE_CUDA", str(device == "cuda"),
                    "TRAINER.COOP.PREC", precision, "OPTIM.MAX_EPOCH", str(epochs),
                    "TRAIN.CHECKPOINT_FREQ", "1", "DATALOADER.NUM_WORKERS", "0",
                    "TEST.NO_TEST", "True"]
            if quick:  # in this process (as the runner's workers run them): faster
                log = _Console()
                with redirect_stdout(log), redirect_stderr(log):
                    code = run_one(train_main, argv[2:],
                                   _env(device, only_added=True, deterministic=True))
                output = log.getvalue()
            else:  # each run a fresh process, as a real resume is
                done = subprocess.run(argv, cwd=workdir, env=_env(device, deterministic=True),
                                      capture_output=True, text=True)
                code, output = done.returncode, done.stdout + done.stderr
            if code:
                raise RuntimeError(f"train.py failed ({code}): {output[-2000:]}")
        whole, resumed = workdir / f"whole-{precision}", workdir / f"resumed-{precision}"
        train(whole)
        shutil.copytree(whole, resumed)
        saved = resumed / "prompt_learner"
        for epoch in range(resume_at + 1, epochs + 1):
            (saved / f"model.pth.tar-{epoch}").unlink()
        (saved / "checkpoint").write_text(f"model.pth.tar-{resume_at}\n")
        for name in ("results.json", "resumes.json"):
            (resumed / name).unlink(missing_ok=True)
        train(resumed)
        last = f"model.pth.tar-{epochs}"
        a = torch.load(whole / "prompt_learner" / last, weights_only=True)["state_dict"]
        b = torch.load(saved / last, weights_only=True)["state_dict"]
        equal = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        resumes = json.loads((resumed / "resumes.json").read_text()) \
            if (resumed / "resumes.json").exists() else []
        exact = bool(resumes) and all(r.get("exact") for r in resumes)
        out[precision] = {"epochs": epochs, "resumed_at_epoch": resume_at,
                          "deterministic_kernels": True,  # SAR_PROMPT_DETERMINISTIC=1
                          "final_prompts_equal": equal, "resumes": resumes,
                          "max_abs_difference": max((a[k].float() - b[k].float()).abs().max()
                                                    .item() for k in a) if a.keys() == b.keys()
                          else None}
        checks.append((f"resume {precision}: final prompts bit for bit", equal, ""))
        checks.append((f"resume {precision}: recorded as exact", exact, str(resumes)))
    return out, checks


def benchmarks_section(device, workdir, arch, quick):
    """`python -m benchmarks --sections steps eval memory` on the device (quick: steps and
    eval, CoOp only); its record."""
    path = workdir / "benchmarks.json"
    argv = [sys.executable, "-m", "benchmarks", "--device", device, "--arch", arch,
            "--sections", "steps", "eval", "memory", "--json", str(path)]
    if quick:  # memory's three processes left out (tests/test_benchmarks.py runs it)
        argv[argv.index("memory")] = None
        argv = [a for a in argv if a] + [
            "--repeats", "1", "--warmup", "0", "--methods", "CoOp", "--classes", "4",
            "--eval-images", "2", "--eval-classes", "4"]
    else:
        argv += ["--repeats", "2", "--warmup", "1"]
    done = subprocess.run(argv, cwd=REPO, env=_env(device), capture_output=True, text=True)
    record = json.loads(path.read_text()) if path.exists() else None
    passed = done.returncode == 0 and bool(record) and record.get("complete")
    return ({"command": argv[1:], "exit_status": done.returncode, "record": record,
             "tables": done.stdout, "stderr_tail": done.stderr[-3000:]},
            [("benchmarks complete", passed, f"exit {done.returncode}")])


def run(opts):
    import torch

    from sar_prompt.errors import ConfigError

    from . import precision_check, report
    from .models import resolution, weights_file

    if opts.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this torch sees no CUDA device. On a CPU, run the "
                          "dry run: --device cpu --quick.")
    arch = "tiny" if opts.quick else "ViT-B/16"
    steps = opts.steps or (2 if opts.quick else 3)
    record = {"schema": SCHEMA, "version": 1, "command": sys.argv, "options": vars(opts),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "arch": arch,
              "device": opts.device, "torch": torch.__version__, "cpu": report.cpu_model(),
              "gpu": torch.cuda.get_device_name() if opts.device == "cuda" else None,
              "tolerance_ulps": opts.ulps, "complete": False, "seconds": {}, "checks": []}
    _write(opts.json, record)  # a bad path fails now
    with tempfile.TemporaryDirectory(prefix="sar-prompt-gpu-check-") as tmp:
        workdir = Path(tmp)
        weights = weights_file(arch, workdir)
        for part in opts.parts:
            print(f"[gpu check] {part}", file=sys.stderr)
            start = time.monotonic()
            try:  # a part that fails is recorded as failed; the next one still runs
                if part == "precision":
                    setup = Setup(arch, weights, opts.device, workdir)
                    cpu = Setup(arch, weights, "cpu", workdir) if opts.device != "cpu" else None
                    def saved(partial):
                        _write(opts.json, {**record, "precision": partial})

                    result, checks = precision_check.section(
                        setup, cpu, _caltech_names(4 if opts.quick else 20), steps,
                        4 if opts.quick else 8, opts.ulps, METHODS,
                        progress=lambda m: print(m, file=sys.stderr), saved=saved)
                elif part == "resume":
                    result, checks = resume_section(opts.device, workdir, weights,
                                                    resolution(arch), opts.quick)
                else:
                    result, checks = benchmarks_section(opts.device, workdir, arch, opts.quick)
            except Exception:  # noqa: BLE001 (recorded, with its traceback)
                error = traceback.format_exc()
                print(error, file=sys.stderr)
                result, checks = {"error": error}, [(f"{part} ran", False, error[-300:])]
            record[part] = result
            record["checks"] += [{"check": c, "passed": bool(p), "detail": d}
                                 for c, p, d in checks]
            record["seconds"][part] = round(time.monotonic() - start, 1)
            _write(opts.json, record)
    record["complete"] = True
    record["passed"] = all(c["passed"] for c in record["checks"])
    _write(opts.json, record)
    sys.stdout.write(summary(record))
    failed = [c for c in record["checks"] if not c["passed"]]
    for c in failed:
        print(f"[gpu check] FAILED {c['check']} {c['detail']}", file=sys.stderr)
    print(f"[gpu check] {len(record['checks']) - len(failed)} of {len(record['checks'])} checks "
          f"passed in {sum(record['seconds'].values()):.0f} s; record: {opts.json}",
          file=sys.stderr)
    return 1 if failed else 0


def summary(record):
    """Markdown: each variant's largest loss difference per comparison, the resume, the
    checks."""
    lines = [f"# GPU check: {record['arch']} on {record['device']} ({record['gpu'] or 'no GPU'}), "
             f"torch {record['torch']}, {record['date']}", ""]
    precision = (record.get("precision") or {}).get("variants")
    if precision:
        keys = list(next(iter(precision.values()))["comparisons"])
        lines += ["| variant | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, entry in precision.items():
            values = entry["comparisons"]
            lines.append(f"| {name} | " + " | ".join(
                f"{values[k]:.2e}" if "relative" in k else f"{values[k]:.2f}" for k in keys)
                + " |")
        lines.append("")
    for precision_name, entry in (record.get("resume") or {}).items():
        if isinstance(entry, dict) and "final_prompts_equal" in entry:
            lines.append(f"- resume {precision_name}: final prompts equal "
                         f"{entry['final_prompts_equal']}, max difference "
                         f"{entry['max_abs_difference']}")
    bench = (record.get("benchmarks") or {}).get("tables")
    if bench:
        lines += ["", bench]
    failed = [c for c in record["checks"] if not c["passed"]]
    lines += ["", f"{len(record['checks']) - len(failed)} of {len(record['checks'])} checks "
              "passed" + "".join(f"\n- FAILED {c['check']} {c['detail']}" for c in failed), ""]
    return "\n".join(lines)


def _caltech_names(count):
    from sar_prompt.classnames import class_names

    return class_names("caltech101")[:count]


def main(argv=None):
    from sar_prompt.errors import run_command

    from sar_prompt.modeling.precision import CPU_HALF_ENV

    opts = build_parser().parse_args(argv)
    if opts.steps is not None and opts.steps < 1:
        build_parser().error("--steps: must be a whole number >= 1")
    before = os.environ.get(CPU_HALF_ENV)
    if opts.device == "cpu":
        os.environ[CPU_HALF_ENV] = "1"  # the half-precision paths on the CPU
    try:
        return run_command(lambda: run(opts))
    finally:
        if before is None:
            os.environ.pop(CPU_HALF_ENV, None)
        else:
            os.environ[CPU_HALF_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
