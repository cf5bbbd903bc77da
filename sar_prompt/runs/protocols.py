"""The CoOp family's evaluation protocols, described once.

A *run* is one `train.py` invocation: a dataset, a trainer and its config, the shots, a seed,
a phase, its folder and its command line. A *job* is the runs that must follow each other
(a seed's base training, then the evaluation of its final checkpoint on the new classes);
jobs are independent of each other, so they can go to any GPU or Slurm task in any order.
Every script (base2new.sh, base2new_all.sh, the Slurm submission) and the result tables
build on these descriptions, so the folder layout and the default configs live here only.

Protocols and their run folders (under OUTPUT):

    base2new   base2new/{train_base,test_new}/<dataset>/shots_<K>/<trainer>/<config>/seed<N>
    fewshot    fewshot/train_all/<dataset>/shots_<K>/<trainer>/<config>/seed<N>
    xd, dg     transfer/from_<source>/train_all/<source>/shots_<K>/<trainer>/<config>/seed<N>
               transfer/from_<source>/test_all/<target>/shots_<K>/<trainer>/<config>/seed<N>

xd (cross-dataset transfer) and dg (domain generalisation) share the source training run:
train on ImageNet with all classes, then evaluate on the other ten datasets (xd) or on
ImageNet's four variants (dg).

<config> is the config's name, followed by `__<tag>` when trailing KEY VALUE overrides are
given (`vit_b16_ctxv1__SAR.WEIGHT=5`; see identity.config_folder and docs/runs.md), so
every setting has its own folders.
"""
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from sar_prompt.catalog import BENCHMARK, DOMAIN_SHIFT, by_key
from sar_prompt.runs.identity import config_folder, file_defaults
from sar_prompt.errors import ConfigError

PROTOCOLS = ("base2new", "fewshot", "xd", "dg")
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)
DEFAULT_SEEDS = (1, 2, 3)
BASE2NEW_SHOTS = 16
TRANSFER_SOURCE = "imagenet"
DEMO = "demo"


def _config_root():
    """The configs/ folder: the installed package `sar_prompt.configs` (a normal install
    carries it as package data; an editable one maps it to the checkout's configs/), else,
    for an editable install made before that mapping existed, the checkout's own configs/."""
    try:
        spec = importlib.util.find_spec("sar_prompt.configs")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    return Path(__file__).resolve().parents[1] / "configs"


CONFIG_ROOT = _config_root()

# phase folder -> (label on the terminal and in tables, DATASET.SUBSAMPLE_CLASSES, trains)
PHASES = {
    "train_base": ("base", "base", True),
    "test_new": ("new", "new", False),
    "train_all": ("train", "all", True),
    "test_all": ("test", "all", False),
}


# -- per-method defaults ---------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """A method's default configs, as its reference repository names them. `folder` is its
    folder under configs/trainers/; `base2new` its base-to-new config; `imagenet` the one it
    uses on ImageNet instead (CoOp: 50 epochs); `fewshot` {shots: config} or one config for
    all shots; `transfer` the config of its ImageNet source run for xd/dg; `trains` False for
    methods that only evaluate (zero-shot CLIP: every run is an evaluation)."""
    folder: str
    base2new: str
    imagenet: str = ""
    fewshot: object = None
    transfer: str = ""
    trains: bool = True

    def config(self, protocol, dataset, shots):
        if protocol in ("xd", "dg"):
            return self.transfer or self.imagenet or self.base2new
        on_imagenet = self.imagenet if dataset == "imagenet" else ""
        if protocol == "fewshot" and self.fewshot and not on_imagenet:
            if isinstance(self.fewshot, dict):
                return self.fewshot.get(shots, self.base2new)
            return self.fewshot
        return on_imagenet or self.base2new


# The table to extend when a method is added. A SAR variant (`<Method>SAR`) uses its method's.
METHODS = {
    # CoOp's epochs follow its paper: 50 for 1-2 shots, 100 for 4-8, 200 for 16; 50 on ImageNet.
    "CoOp": Method("CoOp", "vit_b16_ctxv1", imagenet="vit_b16_ep50_ctxv1",
                   fewshot={1: "vit_b16_ep50_ctxv1", 2: "vit_b16_ep50_ctxv1",
                            4: "vit_b16_ep100_ctxv1", 8: "vit_b16_ep100_ctxv1",
                            16: "vit_b16_ctxv1"}),
    "KgCoOp": Method("KgCoOp", "vit_b16_ep100_ctxv1"),
    "CoCoOp": Method("CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1"),
    "MaPLe": Method("MaPLe", "vit_b16_c2_ep5_batch4_2ctx",
                    transfer="vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    "PromptSRC": Method("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx",
                        fewshot="vit_b16_c2_ep50_batch4_4+4ctx_few_shot",
                        transfer="vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"),
    # Zero-shot CLIP trains nothing: base and new (and every transfer target) are evaluations.
    "ZeroshotCLIP": Method("ZeroshotCLIP", "vit_b16", trains=False),
}
SAR_SUFFIX = "SAR"


def method_name(trainer):
    """The method whose defaults a trainer uses: CoOpSAR -> CoOp."""
    if trainer not in METHODS and trainer.endswith(SAR_SUFFIX) and len(trainer) > len(SAR_SUFFIX):
        return trainer[:-len(SAR_SUFFIX)]
    return trainer


def method_of(trainer):
    return METHODS.get(method_name(trainer))


def trains(trainer):
    method = method_of(trainer)
    return method.trains if method else True


def default_config(trainer, protocol, dataset, shots):
    """The config name a trainer uses by default, or None for a method not in METHODS."""
    if dataset == DEMO:
        return DEMO
    method = method_of(trainer)
    return method.config(protocol, dataset, shots) if method else None


def find_config(trainer, config, config_root=CONFIG_ROOT):
    """(name, file) of a trainer config given as a name or a .yaml path. A name is looked up
    in configs/trainers/<trainer>/, then the method's folder, then configs/trainers/."""
    if str(config).endswith((".yaml", ".yml")):
        path = Path(config).expanduser()
        if not path.is_file():
            raise ConfigError(f"CFG={config}: no such file.")
        return path.stem, path.resolve()
    method = method_of(trainer)
    folders = [trainer] + ([method.folder] if method else []) + [method_name(trainer), ""]
    candidates = []
    for folder in dict.fromkeys(folders):
        candidate = Path(config_root) / "trainers" / folder / f"{config}.yaml"
        if candidate.is_file():
            return config, candidate
        candidates.append(str(candidate.parent) + "/")
    raise ConfigError(f"no config {config!r} for {trainer}: looked for {config}.yaml in "
                      f"{', '.join(candidates)}. Add it there (the method's reference repository "
                      "has it under the same name), or set CFG to another config name or a "
                      ".yaml file.")


def dataset_config(dataset, config_root=CONFIG_ROOT):
    path = Path(config_root) / "datasets" / f"{dataset}.yaml"
    if not path.parent.is_dir():
        raise ConfigError(f"sar-prompt's dataset configs are missing: no folder {path.parent}. "
                          "The installation is incomplete; reinstall sar-prompt (pip install "
                          "sar-prompt, or pip install -e . in a checkout).")
    if not path.is_file():
        known = sorted(p.stem for p in (Path(config_root) / "datasets").glob("*.yaml"))
        raise ConfigError(f"unknown dataset {dataset!r}: no {path}. Available: {' '.join(known)}")
    return path


# -- the layout ------------------------------------------------------------------------------
def protocol_root(output, protocol, source=TRANSFER_SOURCE):
    """The folder that holds a protocol's runs (what `sar-prompt results` reads)."""
    if protocol in ("xd", "dg"):
        return Path(output) / "transfer" / f"from_{source}"
    return Path(output) / protocol


def run_dir(root, phase, dataset, shots, trainer, config, seed):
    """One run's folder under a protocol root (the CoOp family's layout)."""
    return Path(root) / phase / dataset / f"shots_{shots}" / trainer / config / f"seed{seed}"


SEED_FOLDER, SHOTS_FOLDER = re.compile(r"seed(-?\d+)"), re.compile(r"shots_(\d+)")


def parse_run_dir(path):
    """(phase, dataset, shots, trainer, config, seed) of a folder laid out as `run_dir` lays
    it out, or None for any other folder."""
    parts = Path(path).parts
    if len(parts) < 6:
        return None
    phase, dataset, shots, trainer, config, seed = parts[-6:]
    seed_match, shots_match = SEED_FOLDER.fullmatch(seed), SHOTS_FOLDER.fullmatch(shots)
    if phase not in PHASES or not seed_match or not shots_match:
        return None
    return phase, dataset, int(shots_match[1]), trainer, config, int(seed_match[1])


def protocol_of_root(root):
    """The protocol whose runs a folder holds, judged by its name, or None."""
    root = Path(root)
    if root.name in ("base2new", "fewshot"):
        return root.name
    if root.name.startswith("from_") and root.parent.name == "transfer":
        return "transfer"
    return None


# -- runs and jobs ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    protocol: str
    phase: str
    dataset: str
    trainer: str
    config: str              # the config folder: the config name and its overrides tag
    config_file: str
    shots: int
    seed: int
    output_dir: str
    data_root: str
    dataset_config_file: str
    train_dir: str = ""      # evaluations: the training run whose final checkpoint they load
    eval_only: bool = False
    few_shot: bool = True    # pass DATASET.NUM_SHOTS (transfer targets use all their images)
    opts: tuple = ()

    @property
    def phase_label(self):
        return PHASES[self.phase][0]

    @property
    def subsample(self):
        return PHASES[self.phase][1]

    @property
    def trains(self):
        return not self.eval_only

    @property
    def label(self):
        shots = f" {self.shots}-shot" if self.protocol == "fewshot" else ""
        once = self.eval_only and not self.train_dir and not trains(self.trainer)
        return (f"{self.dataset} {self.trainer}{shots} "
                + ("zero-shot" if once else f"seed {self.seed}") + f" {self.phase_label}")

    def argv(self, load_epoch=None):
        """train.py's arguments (after the interpreter and script)."""
        args = ["--root", self.data_root, "--seed", str(self.seed), "--trainer", self.trainer,
                "--dataset-config-file", self.dataset_config_file,
                "--config-file", self.config_file, "--output-dir", self.output_dir]
        if self.eval_only:
            if self.train_dir:
                args += ["--model-dir", self.train_dir]
                if load_epoch is not None:
                    args += ["--load-epoch", str(load_epoch)]
            args.append("--eval-only")
        if self.few_shot:
            args += ["DATASET.NUM_SHOTS", str(self.shots)]
        args += ["DATASET.SUBSAMPLE_CLASSES", self.subsample]
        if not self.eval_only:
            args += ["TRAIN.CHECKPOINT_FREQ", "1"]  # an interrupted run resumes at its last epoch
        return args + list(self.opts)


@dataclass(frozen=True)
class Job:
    """Runs that follow each other; an evaluation needs the training run before it."""
    runs: tuple

    @property
    def label(self):
        first = self.runs[0]
        shots = f" {first.shots}-shot" if first.protocol == "fewshot" else ""
        once = first.eval_only and not first.train_dir and not trains(first.trainer)
        return f"{first.dataset} {first.trainer}{shots} " + ("zero-shot" if once else
                                                             f"seed {first.seed}")


@dataclass(frozen=True)
class Benchmark:
    """What to run: a protocol, a trainer, datasets, seeds, shots, config and folders."""
    protocol: str
    trainer: str
    datasets: tuple = ()
    seeds: tuple = DEFAULT_SEEDS
    shots: tuple = ()
    config: str = ""            # CFG: a config name or .yaml path for every run; "" = defaults
    data: str = "data"
    output: str = "output"
    opts: tuple = ()            # trailing KEY VALUE pairs for every run
    source: str = TRANSFER_SOURCE
    config_root: str = str(CONFIG_ROOT)
    extra_opts: dict = field(default_factory=dict)  # dataset -> opts only its runs get (demo)
    tag: str = ""               # replaces the overrides' part of the config folder's name
    point: tuple = ()           # a sweep's KEY VALUE pairs (also in opts), named after a tag

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; use one of "
                              f"{', '.join(PROTOCOLS)}.")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", self.trainer or ""):
            raise ConfigError(f"trainer {self.trainer!r} is not a trainer name.")
        object.__setattr__(self, "datasets", tuple(self.datasets) or default_datasets(
            self.protocol, self.source))
        object.__setattr__(self, "shots", tuple(int(s) for s in self.shots) or (
            FEWSHOT_SHOTS if self.protocol == "fewshot" else (BASE2NEW_SHOTS,)))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.protocol != "fewshot" and len(self.shots) != 1:
            raise ConfigError(f"{self.protocol} trains with one number of shots; got "
                              f"{' '.join(map(str, self.shots))}.")
        if len(self.opts) % 2:
            raise ConfigError(f"trailing options must be KEY VALUE pairs; got {len(self.opts)} "
                              f"words: {' '.join(self.opts)}")
        if not self.seeds:
            raise ConfigError("no seeds given.")

    @property
    def root(self):
        return protocol_root(self.output, self.protocol, self.source)

    def config_for(self, dataset, shots):
        """(name, file) of the trainer config of `dataset`'s runs."""
        name = self.config or default_config(self.trainer, self.protocol, dataset, shots)
        if not name:
            raise ConfigError(f"no default config for trainer {self.trainer!r} (the defaults "
                              f"are in sar_prompt/runs/protocols.py: {', '.join(METHODS)}); set CFG "
                              "(or --config) to a config name or .yaml file.")
        return find_config(self.trainer, name, self.config_root)

    def folder_for(self, dataset, shots):
        """The config folder of `dataset`'s runs: the config's name and the overrides (those
        that change something: identity.config_folder)."""
        return self._folder(dataset, self.config_for(dataset, shots))

    def _folder(self, dataset, config):
        name, file = config
        if self.protocol in ("xd", "dg"):  # the targets' evaluations: the source's folder
            dataset = self.source
        defaults = file_defaults((dataset_config(dataset, self.config_root), file))
        return config_folder(name, self.opts, self.tag, self.point, defaults)

    def _run(self, phase, dataset, shots, seed, config, **kw):
        name, file = config
        name = self._folder(dataset, config)
        opts = tuple(self.extra_opts.get(dataset, ())) + tuple(self.opts)
        return Run(protocol=self.protocol, phase=phase, dataset=dataset, trainer=self.trainer,
                   config=name, config_file=str(file), shots=shots, seed=seed,
                   output_dir=str(run_dir(self.root, phase, dataset, shots, self.trainer,
                                          name, seed)),
                   data_root=str(Path(self.data).expanduser().resolve()),
                   dataset_config_file=str(dataset_config(dataset, self.config_root)),
                   opts=opts, **kw)

    def jobs(self):
        """Every job of the benchmark, datasets in the reference tables' order, then shots,
        then seeds. A method that trains nothing (zero-shot CLIP) is evaluated once per
        dataset and phase: one job, in the first seed's folder (where earlier versions put
        seed 1, so their runs are found and kept), whatever the seeds."""
        learns = trains(self.trainer)
        seeds = self.seeds if learns else self.seeds[:1]
        jobs = []
        if self.protocol in ("base2new", "fewshot"):
            for dataset in self.datasets:
                for shots in self.shots:
                    config = self.config_for(dataset, shots)
                    for seed in seeds:
                        first_phase = "train_base" if self.protocol == "base2new" else "train_all"
                        first = self._run(first_phase, dataset, shots, seed, config,
                                          eval_only=not learns)
                        runs = [first]
                        if self.protocol == "base2new":
                            runs.append(self._run("test_new", dataset, shots, seed, config,
                                                  eval_only=True,
                                                  train_dir=first.output_dir if learns else ""))
                        jobs.append(Job(tuple(runs)))
            return jobs
        shots = self.shots[0]
        config = self.config_for(self.source, shots)
        for seed in seeds:
            first = self._run("train_all", self.source, shots, seed, config, eval_only=not learns)
            tests = [self._run("test_all", target, shots, seed, config, eval_only=True,
                               few_shot=False, train_dir=first.output_dir if learns else "")
                     for target in self.datasets]
            jobs.append(Job((first, *tests)))
        return jobs


def default_datasets(protocol, source=TRANSFER_SOURCE):
    """The datasets (targets, for xd/dg) of a protocol, in the reference tables' order."""
    if protocol == "xd":
        return tuple(d.key for d in BENCHMARK if d.key != source)
    if protocol == "dg":
        return tuple(d.key for d in DOMAIN_SHIFT)
    return tuple(d.key for d in BENCHMARK)


def dataset_title(key):
    info = by_key(key)
    return info.label if info else key
