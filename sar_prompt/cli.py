"""`sar-prompt COMMAND ...` (also `python -m sar_prompt`): every sar-prompt tool behind one
command and one vocabulary. Each subcommand hands its arguments to a tool's own main(); the
tools' older entry points (`train.py`, scripts/*.sh, `python -m sar_prompt.results`, ...)
keep working unchanged.
"""
import argparse
import importlib
import os
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Tuple

from sar_prompt.vocabulary import TERMS, words

PROG = "sar-prompt"


@dataclass(frozen=True)
class Subcommand:
    name: str
    module: str                # the tool: its main(argv) and build_parser()
    summary: str
    prefix: Tuple[str, ...] = ()  # words put before the user's arguments


SUBCOMMANDS = {s.name: s for s in (
    Subcommand("run", "sar_prompt.orchestration.bench",
               "run a protocol (base2new, fewshot, xd, dg) for one or more trainers over its "
               "datasets and seeds, then print its table"),
    Subcommand("base2new", "sar_prompt.orchestration.bench", "the same as `run base2new`",
               prefix=("base2new",)),
    Subcommand("demo", "sar_prompt.orchestration.bench",
               "the offline demo: `run base2new CoOpSAR --datasets demo` on a generated "
               "dataset and a tiny random CLIP",
               prefix=("base2new",)),
    Subcommand("world", "sar_prompt.orchestration.world",
               "a synthetic world where a tiny CLIP works: zero-shot CLIP, CoOp and CoOpSAR "
               "base-to-new on a CPU, with numbers that mean something (`world study`: "
               "SAR's weight over seeds)"),
    Subcommand("train", "sar_prompt.train",
               "one training or evaluation run, with CoOp's train.py command line"),
    Subcommand("results", "sar_prompt.results.tables_cli",
               "result tables (text, markdown, LaTeX, CSV, JSON) and plots from the runs on "
               "disk"),
    Subcommand("diagnose", "sar_prompt.results.diagnose",
               "how far a trained prompt moved the classes' similarity structure"),
    Subcommand("data", "sar_prompt.data.__main__", "check or download a dataset"),
    Subcommand("novel", "sar_prompt.novel.lists_cli", "make, cache and check novel-class lists"),
)}

DEMO_TRAINER = "CoOpSAR"
DEMO_HELP = f"""usage: {PROG} demo [TRAINER] [run options]

The offline demo: a tiny generated dataset (written under --data, ./data by default) and a
tiny RANDOM CLIP, trained and evaluated base-to-new like a real run. Its accuracies only
show that the pipeline runs end to end; they say nothing about any method.

    {PROG} demo                      # {DEMO_TRAINER}
    {PROG} demo KgCoOpSAR --seeds 1
    {PROG} demo --trainers CoOp CoOpSAR --output /tmp/demo

The same as `{PROG} run base2new TRAINER --datasets demo`; every option of `{PROG} run
--help` applies (--data, --output, --config, --seeds, --shots, --gpus, --dry-run, ...).
"""


def overview():
    width = max(len(name) for name in [*SUBCOMMANDS, *(t.flag for t in TERMS.values())])
    lines = [f"usage: {PROG} COMMAND [options]      ({PROG} COMMAND --help: its options)", "",
             "Similarity Alignment Regularization (SAR) for CLIP prompt tuning.", "",
             "commands:"]
    lines += [_item(s.name, width, s.summary) for s in SUBCOMMANDS.values()]
    lines += ["", "The same option, wherever it applies (older spellings keep working):"]
    for term in TERMS.values():
        env = f" [${term.env} or ${term.short_env}]" if term.env else ""
        lines.append(_item(term.flag, width, term.meaning + env))
    lines += ["", "The variables are read by run, base2new and demo (data reads $SAR_PROMPT_DATA, "
              "results", "$SAR_PROMPT_OUTPUT). An option given wins over its variable; "
              "SAR_PROMPT_<NAME> wins", "over the short name when both are set. See docs/cli.md."]
    return "\n".join(lines) + "\n"


def _item(name, width, text):
    return textwrap.fill(text, 88, initial_indent=f"  {name:<{width}}  ",
                         subsequent_indent=" " * (width + 4))


@contextmanager
def _named(module, prog):
    """The tool's parsers, while it runs, say `prog` (sar-prompt run) in usage and errors."""
    original = module.build_parser

    def build_parser(*args, **kwargs):
        parser = original(*args, **kwargs)
        _rename(parser, parser.prog, prog)
        if module.__name__ == "sar_prompt.orchestration.bench":  # read by this module; shown in --help
            parser.add_argument("--trainers", nargs="+", metavar="TRAINER",
                                help="several trainers, run one after the other (instead "
                                     "of TRAINER)")
        return parser

    module.build_parser = build_parser
    try:
        yield
    finally:
        module.build_parser = original


def _rename(parser, old, new):
    parser.prog = new if parser.prog == old else parser.prog.replace(old, new, 1)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _rename(child, old, new)


def split_trainers(argv):
    """(the trainers named by --trainers, the other arguments). --trainers takes the words
    up to the next option or config key (KEY VALUE pairs' keys have a dot; trainer names
    never do)."""
    trainers, rest, i = [], [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--trainers":
            i += 1
            while i < len(argv) and not argv[i].startswith("-") and "." not in argv[i]:
                trainers.append(argv[i])
                i += 1
            if not trainers:
                raise SystemExit(f"{PROG}: error: --trainers needs at least one trainer")
            continue
        if word.startswith("--trainers="):
            trainers += words(word.split("=", 1)[1])
        else:
            rest.append(word)
        i += 1
    return trainers, rest


def with_trainer(argv, trainer):
    """`argv` (PROTOCOL [...]) with `trainer` as the positional after the protocol."""
    from sar_prompt.runs.protocols import PROTOCOLS

    for i, word in enumerate(argv):
        if word in PROTOCOLS:
            return [*argv[:i + 1], trainer, *argv[i + 1:]]
    return [trainer, *argv]  # no protocol: the tool's parser says so


def bench_argvs(sub, argv):
    """The `python -m sar_prompt.orchestration.bench` command lines a run / base2new / demo
    makes: one per trainer of --trainers, else the one given."""
    trainers, rest = split_trainers(argv)
    if sub.name == "demo":
        if not trainers and not (rest and not rest[0].startswith("-")):
            trainers = [DEMO_TRAINER]
        rest = [*rest, "--datasets", "demo"]  # last: the demo is always the demo dataset
    rest = [*sub.prefix, *rest]
    return [with_trainer(rest, t) for t in trainers] if trainers else [rest]


def one_table(argvs, argv):
    """Several trainers, run one after the other: the last prints one table of them all
    (each XSAR beside its X), the others none; unless --table, a sweep or a dry run asks
    for each trainer's own."""
    import os

    trainers, _ = split_trainers(argv)
    own = ("--table", "--sweep", "--dry-run")
    if len(trainers) < 2 or os.environ.get("SWEEP") or any(
            a in own or a.startswith(tuple(f"{o}=" for o in own)) for a in argv):
        return argvs
    return [a + ["--table", "none"] for a in argvs[:-1]] + \
        [argvs[-1] + [f"--compare-trainers={','.join(trainers)}"]]


def dispatch(sub, argv):
    module = importlib.import_module(sub.module)
    prog = f"{PROG} {'run' if sub.module == 'sar_prompt.orchestration.bench' else sub.name}"
    with _named(module, prog):
        if sub.module != "sar_prompt.orchestration.bench":
            return module.main(argv)
        argvs = one_table(bench_argvs(sub, argv), argv)
        worst = 0
        for i, bench_argv in enumerate(argvs, 1):
            if len(argvs) > 1:
                print(f"== {PROG} run {' '.join(bench_argv[:2])} ({i}/{len(argvs)})",
                      flush=True)
            code = module.main(bench_argv)
            if code == 130:  # interrupted: stop here
                return code
            worst = max(worst, code or 0)
        return worst


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(overview(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        from sar_prompt import __version__

        print(f"{PROG} {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"{PROG}: error: unknown command {name!r}; choose one of "
              f"{', '.join(SUBCOMMANDS)} ({PROG} --help).", file=sys.stderr)
        return 2
    if name == "demo" and any(a in ("-h", "--help") for a in rest):
        print(DEMO_HELP, end="")
        return 0
    try:
        return dispatch(SUBCOMMANDS[name], rest)
    except BrokenPipeError:  # `sar-prompt ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
