"""Checks of a command's input made before anything is spawned or built.

`bench_args` (sar-prompt run, so scripts/base2new.sh, base2new_all.sh and
bench.sh) reads SEEDS / SHOTS / GPUS or their flags, the trainer name and the Slurm choice;
`bench_data` reports a missing DATA folder once, before the first run; `train_inputs`
(train.py) checks INPUT.SIZE, --model-dir and --load-epoch before CLIP and the data are
built. Each refusal is a ConfigError naming the variable or flag, the value and the fix.
"""
import glob
import os
import re
import shutil
from pathlib import Path

from sar_prompt.errors import ConfigError
from sar_prompt.runs.protocols import DEFAULT_SEEDS, METHODS, SAR_SUFFIX, trains
from sar_prompt.vocabulary import lookup, words


# -- sar-prompt run ------------------------------------------------------------------------------
def project_trainers():
    """The trainers this project runs: each method of protocol.METHODS and, for those that
    learn a prompt, its SAR variant."""
    names = list(METHODS)
    names += [m + SAR_SUFFIX for m, method in METHODS.items() if method.trains]
    return names


def _source(flag, env):
    """(words, 'where they came from') of a list option: the flag if given, else $env."""
    if flag is not None:
        return list(flag), f"--{env.lower()}"
    variable, value = lookup(env.lower())  # the long name wins (sar_prompt/vocabulary.py)
    if variable is None:
        return [], f"{env}=''"
    return words(value), f"{variable}={value!r}"


def _whole_numbers(given, where, what, lowest, example):
    numbers = []
    for word in given:
        if not re.fullmatch(r"[+-]?\d+", word):
            raise ConfigError(f"{where}: {word!r} is not a whole number. {what} are whole "
                              f"numbers {lowest} or more, separated by spaces, e.g. {example}.")
        number = int(word)
        if number < lowest:
            raise ConfigError(f"{where}: {number} is below {lowest}. {what} are whole numbers "
                              f"{lowest} or more, e.g. {example}.")
        if number in numbers:
            raise ConfigError(f"{where}: {number} is given twice; give each once, e.g. "
                              f"{example}.")
        numbers.append(number)
    return numbers


def check_trainer(trainer):
    known = project_trainers()
    if trainer in known:
        return
    from sar_prompt.config.command_line import suggest

    close = suggest(trainer, known)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown trainer {trainer!r} (the TRAINER argument).{hint} This "
                      f"project's trainers: {', '.join(known)}.")


def bench_args(args):
    """Check and normalise bench's parsed arguments in place: seeds, shots and GPUs become
    lists of whole numbers (from the flags, else SEEDS / SHOTS / GPUS), the trainer must be
    one of the project's, and --slurm needs Slurm. Returns `args`."""
    check_trainer(args.trainer)
    given, where = _source(args.seeds, "SEEDS")
    args.seeds = _whole_numbers(given, where, "Seeds", 0, 'SEEDS="1 2 3"') or list(DEFAULT_SEEDS)
    given, where = _source(args.shots, "SHOTS")
    args.shots = _whole_numbers(given, where, "Shots (images per class)", 1, 'SHOTS="1 2 4 8 16"')
    given, where = _source(words(args.gpus) if args.gpus is not None else None, "GPUS")
    gpus = _whole_numbers(given, where, "GPU ids", 0, 'GPUS="0,1,2,3"')
    args.gpus = ",".join(map(str, gpus))
    (args.jobs,) = _whole_numbers([str(args.jobs or 1).strip()], "--jobs (JOBS)",
                                  "Jobs at a time", 1, "--jobs 4")
    if gpus and args.jobs > 1:
        raise ConfigError(f"--gpus and --jobs (JOBS) {args.jobs} both say how many jobs run "
                          "at a time: with GPUs it is one job per GPU; give one of them.")
    slurm = args.slurm and args.cluster in (None, "slurm") or args.cluster == "slurm"
    if slurm and not args.dry_run and shutil.which("sbatch") is None:
        flag = "--slurm" if args.slurm else "--cluster slurm"
        raise ConfigError(f"{flag}: there is no Slurm here (no sbatch on PATH). Run on a "
                          "Slurm login node, or add --cluster local to run the same submission "
                          "on this machine.")
    return args


def check_gpus_exist(gpus):
    """GPUS / --gpus name GPUs this machine shows (before a run starts): a run given a GPU
    that does not exist would train on the CPU instead. The ids are what each run gets as
    CUDA_VISIBLE_DEVICES, so under a CUDA_VISIBLE_DEVICES of our own they must be among it."""
    import torch  # only for runs that start here: dry runs stay fast

    given = ",".join(gpus)
    if not torch.cuda.is_available():
        raise ConfigError(f"--gpus {given}: no GPU is visible here (torch.cuda.is_available() "
                          "is False: no NVIDIA driver, a CPU-only PyTorch build, or "
                          "CUDA_VISIBLE_DEVICES hides them). Run on a GPU machine, or leave "
                          "--gpus out (and GPUS unset) to run on the CPU (--jobs N: N jobs at "
                          "a time).")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        allowed, shown = words(visible), f"CUDA_VISIBLE_DEVICES={visible}"
    else:
        count = torch.cuda.device_count()
        allowed, shown = [str(i) for i in range(count)], f"{count} GPUs (0-{count - 1})"
    for gpu in gpus:
        if gpu not in allowed:
            raise ConfigError(f"--gpus {given}: GPU {gpu} is not visible here; this machine "
                              f"shows {shown}. Give ids from those.")


def bench_data(bench, jobs):
    """A symbolic link in a run folder (refused before anything runs, see runs/lock.py);
    a missing DATA folder, said once (runs would each fail on it): not for the demo and the
    world, which generate their data, nor when every run is finished already."""
    from sar_prompt.runs.lock import refuse_links
    from sar_prompt.runs.result_file import read_run

    for job in jobs:
        for run in job.runs:
            refuse_links(run.output_dir)
    if "demo" in bench.datasets or "world" in bench.datasets:
        return
    data = Path(bench.data).expanduser()
    if data.is_dir():
        return
    if all(read_run(run.output_dir).finished for job in jobs for run in job.runs):
        return
    what = "is a file, not a folder" if data.exists() else "does not exist"
    first = bench.source if bench.protocol in ("xd", "dg") else bench.datasets[0]
    raise ConfigError(f"the datasets folder {data} (DATA / --data) {what}. Set DATA to the "
                      "folder that holds the datasets, or make it: sar-prompt data "
                      f"download {first} --data {data} (docs/datasets.md).")


def missing_data(bench, jobs):
    """Lines for a dry run: the dataset folders under DATA that the runs still to do need
    and that are missing or incomplete (the demo generates its own)."""
    from sar_prompt.data.layouts import files_for
    from sar_prompt.runs.result_file import read_run

    needed = list(dict.fromkeys(run.dataset for job in jobs for run in job.runs
                                if run.dataset != "demo" and not read_run(run.output_dir).finished))
    data = Path(bench.data).expanduser()
    if needed and not data.is_dir():
        return [f"data: the datasets folder {data} (--data) does not exist; make it: "
                f"sar-prompt data download {needed[0]} --data {data} (docs/datasets.md)"]
    lines = []
    for key in needed:
        files = files_for(key)(data)
        if not files.dataset_path.is_dir():
            lines.append(f"data: {key}: {files.dataset_path} is missing; sar-prompt data "
                         f"download {key} --data {data}")
        elif files.layout_problems():
            lines.append(f"data: {key}: {files.dataset_path} is incomplete; sar-prompt data "
                         f"check {key} --data {data} says what is missing")
    return lines


def planned_load_epoch(job, run):
    """The epoch an evaluation will load when its training run has not finished yet: the
    training config's OPTIM.MAX_EPOCH, as train.py resolves it from the run's command line."""
    training = next((r for r in job.runs if r.output_dir == run.train_dir), None)
    if training is None:
        raise ConfigError(f"{run.label}: its training run {run.train_dir} is not in its job.")
    return max_epoch(training.argv())


def max_epoch(argv):
    """OPTIM.MAX_EPOCH of a train.py command line (dataset and method configs, then the
    trailing options), resolved with train.py's own config layering (without importing
    Dassl's engine, or torch)."""
    from sar_prompt.config.command_line import build_parser, setup_cfg

    try:
        return int(setup_cfg(build_parser().parse_args(argv), light=True).OPTIM.MAX_EPOCH)
    except ModuleNotFoundError as exc:
        if exc.name != "dassl":
            raise
    # without Dassl: the same layers, read as plain YAML (Dassl's default is 10)
    import yaml

    args = build_parser().parse_args(argv)
    epoch = 10
    for path in (args.dataset_config_file, args.config_file):
        if path:
            node = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            epoch = (node.get("OPTIM") or {}).get("MAX_EPOCH", epoch)
    opts = args.opts or []
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "OPTIM.MAX_EPOCH":
            epoch = yaml.safe_load(value)
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ConfigError(f"OPTIM.MAX_EPOCH is {epoch!r}; it must be a whole number, e.g. "
                          "OPTIM.MAX_EPOCH 50.")
    return epoch


# -- train.py ----------------------------------------------------------------------------------
def train_inputs(cfg, args):
    """INPUT.SIZE, DATASET.NUM_SHOTS, --model-dir and --load-epoch, before CLIP and the
    data are built."""
    from sar_prompt.config import check_num_shots

    check_input_size(cfg.INPUT.SIZE)
    check_num_shots(cfg.DATASET.NUM_SHOTS)
    if args.load_epoch is not None and args.load_epoch < 0:
        raise ConfigError(f"--load-epoch {args.load_epoch}: epochs are 1 or more (the number "
                          "in model.pth.tar-N). Pass a saved epoch, or leave --load-epoch out "
                          "to load model-best.pth.tar.")
    if args.eval_only and args.model_dir:  # training ignores --model-dir
        check_model_dir(args.model_dir, args.load_epoch, trains(cfg.TRAINER.NAME))


def check_input_size(size):
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size))
    if not ok:
        shown = tuple(size) if isinstance(size, list) else size
        raise ConfigError(f"INPUT.SIZE is {shown!r}; it must be (height, width) in pixels, two "
                          "whole numbers greater than 0, written INPUT.SIZE \"(224, 224)\" on "
                          "the command line or SIZE: (224, 224) in a config file.")


def _epoch_of(path):
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def check_model_dir(model_dir, load_epoch, needs_checkpoints=True):
    folder = Path(model_dir).expanduser()
    if folder.is_file():
        epoch = _epoch_of(folder.name) if folder.name.startswith("model.pth.tar-") else None
        instead = (f" (for this file: --model-dir {folder.parent.parent} --load-epoch {epoch})"
                   if epoch is not None else "")
        raise ConfigError(f"--model-dir {model_dir} is a file. Give the output folder of a "
                          f"training run, the one that holds prompt_learner/{instead}.")
    if not folder.is_dir():
        raise ConfigError(f"--model-dir {model_dir} does not exist. Point it at the output "
                          "folder of a finished training run (the folder that holds "
                          "prompt_learner/).")
    if not needs_checkpoints:
        return
    models = {}  # model folder -> its saved epochs
    for marker in glob.glob(os.path.join(glob.escape(str(folder)), "*", "model*.pth.tar*")):
        epochs = models.setdefault(os.path.dirname(marker), set())
        if _epoch_of(marker) is not None and "model.pth.tar-" in os.path.basename(marker):
            epochs.add(_epoch_of(marker))
    if not models:
        raise ConfigError(f"--model-dir {model_dir} holds no checkpoint (no <model>/"
                          "model.pth.tar-N): is its training finished? Train first, or point "
                          "--model-dir at a finished training run.")
    if load_epoch is None:
        return  # model-best.pth.tar: the trainer names a missing one per model
    saved = set.intersection(*models.values())
    if load_epoch not in saved:
        listed = ", ".join(map(str, sorted(saved))) or "none"
        raise ConfigError(f"--load-epoch {load_epoch}: {model_dir} holds no checkpoint of "
                          f"epoch {load_epoch} (model.pth.tar-{load_epoch}). The epochs saved "
                          f"there are {listed}: pass one of them.")
