"""sar-prompt's performance harness, run from the repository root:

    python -m benchmarks [--arch ViT-B/16|ViT-B/32|tiny] [--device auto|cpu|cuda]
                         [--sections steps text eval sar_growth memory cli]
                         [--methods CoOp KgCoOp CoCoOp MaPLe PromptSRC] [--json PATH] ...

CLIP has random weights of the chosen architecture (timings depend on shapes, not values).
Prints markdown tables to stdout, progress to stderr; --json writes every raw timing.
See benchmarks/README.md for what each section measures and how to read the ratios.
"""
import argparse
import sys
import tempfile
from pathlib import Path

from .build import METHODS
from .models import ARCHS

SECTIONS = ("steps", "text", "eval", "sar_growth", "memory", "cli")
DEFAULT_NOVEL = (25, 50, 100, 200)
CALTECH_CLASSES, IMAGENET_CLASSES = 100, 1000


def whole(low, high=None):
    """An argparse type: a whole number in [low, high]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, got {text!r}")
        return value
    return parse


def one_of(choices):
    """An argparse type for list options: a known name (commas also separate names)."""
    def parse(text):
        words = [w for w in text.split(",") if w]
        for word in words:
            if word not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown name {word!r}; choose from {', '.join(choices)}")
        return words
    return parse


def flat(lists, default):
    if not lists:
        return list(default)
    return list(dict.fromkeys(w for words in lists for w in words))


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=list(ARCHS), default="ViT-B/16",
                   help="CLIP architecture, random weights (default ViT-B/16; tiny for tests)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda if available (default)")
    p.add_argument("--sections", nargs="+", type=one_of(SECTIONS), metavar="SECTION",
                   help=f"which sections to run (default all: {' '.join(SECTIONS)})")
    p.add_argument("--methods", nargs="+", type=one_of(METHODS), metavar="METHOD",
                   help=f"methods X (each timed with XSAR; default all: {' '.join(METHODS)})")
    p.add_argument("--batch-size", type=whole(1), default=None,
                   help="training batch size for every method (default: each method's "
                        "reference config)")
    p.add_argument("--classes", type=whole(1, CALTECH_CLASSES), default=50,
                   help="Caltech101 classes trained on in steps, text, sar_growth (default "
                        "50, its base classes); XSAR samples as many novel classes")
    p.add_argument("--repeats", type=whole(1), default=5, help="counted rounds (default 5)")
    p.add_argument("--warmup", type=whole(0), default=1,
                   help="uncounted rounds first (default 1)")
    p.add_argument("--eval-images", type=whole(1), default=200,
                   help="images classified per evaluation (default 200)")
    p.add_argument("--eval-classes", type=whole(1, IMAGENET_CLASSES), default=IMAGENET_CLASSES,
                   help="ImageNet classes in evaluation (default 1000)")
    p.add_argument("--novel", nargs="+", type=whole(1), default=list(DEFAULT_NOVEL),
                   help="sar_growth: CoOpSAR's NUM_NOVEL values (default 25 50 100 200)")
    p.add_argument("--memory-classes", type=whole(1, IMAGENET_CLASSES - 1), default=500,
                   help="memory: ImageNet base classes; SAR's novel classes are the other "
                        "ImageNet names (default 500)")
    p.add_argument("--cli-repeats", type=whole(1), default=3,
                   help="cli: counted rounds of each command (default 3)")
    p.add_argument("--threads", type=whole(1), default=None,
                   help="torch CPU threads (default: torch's default)")
    p.add_argument("--json", default=None, metavar="PATH",
                   help="write the record (environment, options, every raw timing) here")
    return p


def resolve_device(requested):
    import torch

    from sar_prompt.errors import ConfigError

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: this torch sees no CUDA device. Use --device cpu "
                          "(or auto).")
    return requested


def require_dassl():
    import importlib.util

    from sar_prompt.errors import SarPromptError

    if importlib.util.find_spec("dassl") is None:
        raise SarPromptError("Dassl is not installed: the benchmarks build the registered "
                             "Dassl trainers. Install it (see docs/install.md), or put "
                             "tests/dassl_double on PYTHONPATH for the tiny architecture.")


def run(opts, argv):
    import torch

    from . import cli_tools, memory, report, sections
    from .build import Setup
    from .models import weights_file

    if set(opts.sections) - {"cli"}:
        require_dassl()
    device = resolve_device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    runners = {"steps": sections.steps, "text": sections.text, "eval": sections.evaluation,
               "sar_growth": sections.sar_growth, "memory": memory.section,
               "cli": cli_tools.section}
    with tempfile.TemporaryDirectory(prefix="sar-prompt-bench-") as tmp:
        print(f"[benchmarks] writing a random {opts.arch} CLIP to {tmp}", file=sys.stderr)
        setup = Setup(opts.arch, weights_file(opts.arch, tmp), device, Path(tmp))
        record = report.environment(setup, opts, argv)
        record["options"] = {k: v for k, v in vars(opts).items() if k != "json"}
        record["complete"], record["sections"] = False, {}
        if opts.json:
            report.write(opts.json, record)  # a bad path fails now, not after the run
        for name in opts.sections:
            print(f"[benchmarks] section {name}", file=sys.stderr)
            record["sections"][name] = runners[name](setup, opts)
            if opts.json:
                report.write(opts.json, record)  # what is done is kept if a later one fails
    record["complete"] = True
    if opts.json:
        report.write(opts.json, record)
    sys.stdout.write(report.markdown(record))


def main(argv=None):
    from sar_prompt.errors import run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    opts = build_parser().parse_args(argv)
    opts.sections = flat(opts.sections, SECTIONS)
    opts.methods = flat(opts.methods, METHODS)
    opts.novel = sorted(set(opts.novel))
    return run_command(lambda: run(opts, argv))


if __name__ == "__main__":
    sys.exit(main())
