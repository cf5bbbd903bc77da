"""Trainers built for timing: the registered Dassl trainers, configured from the methods'
reference config files through train.py's own layering, without a dataset on disk.

Dassl's SimpleTrainer.__init__ builds data loaders (`build_data_loader`), then the model.
Dassl documents `build_data_loader` as the method to re-implement, so the harness builds a
subclass of the registered trainer whose `build_data_loader` sets the same attributes from
a list of class names; everything else (`check_cfg`, the device, `build_model`, the
evaluator) runs as in a real run.
"""
import sys
import tempfile
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

# Each method's reference base-to-new config (batch size, precision, prompt design).
METHOD_CONFIGS = {
    "CoOp": "CoOp/vit_b16_ep50_ctxv1.yaml",
    "KgCoOp": "KgCoOp/vit_b16_ep100_ctxv1.yaml",
    "CoCoOp": "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
    "MaPLe": "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
    "PromptSRC": "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
}
METHODS = tuple(METHOD_CONFIGS)
DATASET_CONFIGS = {"Caltech101": "caltech101.yaml", "ImageNet": "imagenet.yaml"}
SEED = 1


@dataclass
class Setup:
    """What every trainer of one harness run shares."""
    arch: str
    weights: Path  # the CLIP state-dict file
    device: str  # "cpu" | "cuda"
    workdir: Path  # temporary folder of the run (output dirs, list files)

    @property
    def resolution(self):
        from .models import resolution

        return resolution(self.arch)


def make_cfg(setup, trainer, method, dataset="Caltech101", batch_size=None, opts=()):
    """A frozen cfg for `trainer` with `method`'s reference config, as train.py builds it."""
    from sar_prompt.train import build_parser, setup_cfg

    r = setup.resolution
    out = tempfile.mkdtemp(prefix=f"{trainer}-", dir=setup.workdir)
    argv = ["--trainer", trainer, "--seed", str(SEED), "--output-dir", out,
            "--config-file", str(CONFIGS / "trainers" / METHOD_CONFIGS[method]),
            "--dataset-config-file", str(CONFIGS / "datasets" / DATASET_CONFIGS[dataset]),
            "MODEL.BACKBONE.NAME", "ViT-B/16", "MODEL.BACKBONE.PATH", str(setup.weights),
            "INPUT.SIZE", f"({r}, {r})", "USE_CUDA", str(setup.device == "cuda"),
            "TRAIN.PRINT_FREQ", "1000000", "DATALOADER.NUM_WORKERS", "0"]
    if batch_size:
        argv += ["DATALOADER.TRAIN_X.BATCH_SIZE", str(batch_size)]
    return setup_cfg(build_parser().parse_args(argv + list(opts)))


class _ClassNamesOnly:
    """`build_data_loader` from class names: the attributes Dassl's sets, no loaders."""

    benchmark_classnames = ()

    def build_data_loader(self):
        names = list(self.benchmark_classnames)
        lab2cname = dict(enumerate(names))
        dataset = SimpleNamespace(classnames=names, lab2cname=lab2cname,
                                  num_classes=len(names))
        self.dm = SimpleNamespace(dataset=dataset, num_classes=len(names), lab2cname=lab2cname,
                                  num_source_domains=1, train_loader_x=None,
                                  train_loader_u=None, val_loader=None, test_loader=None)
        self.train_loader_x = self.train_loader_u = self.val_loader = self.test_loader = None
        self.num_classes, self.lab2cname, self.num_source_domains = len(names), lab2cname, 1


def build_trainer(cfg, classnames):
    """The registered trainer cfg.TRAINER.NAME on `classnames`, seeded as train.py seeds,
    ready for `forward_backward` (its own messages go to stderr)."""
    import sar_prompt

    sar_prompt.register()
    from dassl.engine import TRAINER_REGISTRY
    from dassl.utils import set_random_seed

    registered = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    cls = type(registered.__name__, (_ClassNamesOnly, registered),
               {"benchmark_classnames": tuple(classnames), "__module__": __name__})
    set_random_seed(cfg.SEED)
    with redirect_stdout(sys.stderr):
        trainer = cls(cfg)
    # one long epoch: the learning rate never steps during timing
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 1 << 30
    trainer.set_model_mode("train")
    return trainer


def synthetic_batch(setup, batch_size, num_classes, seed=0):
    """{"img": (B, 3, R, R), "label": (B,)} on the run's device, seeded."""
    import torch

    g = torch.Generator().manual_seed(seed)
    r = setup.resolution
    images = torch.randn(batch_size, 3, r, r, generator=g)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g)
    return {"img": images.to(setup.device), "label": labels.to(setup.device)}


def write_novel_list(path, dataset, names, description):
    """A novel-class list file (schema of sar_prompt.novel) holding `names`, deduplicated."""
    from sar_prompt.io import atomic_write_json
    from sar_prompt.novel import SCHEMA, VERSION, normalized

    seen, unique = set(), []
    for name in names:
        if normalized(name) not in seen:
            seen.add(normalized(name))
            unique.append(name)
    atomic_write_json(path, {
        "schema": SCHEMA, "version": VERSION, "dataset": dataset, "novel_classes": unique,
        "provenance": {"source": "file", "description": description,
                       "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}})
    return Path(path), len(unique)


def distinct_from(names, excluded):
    """`names` without those equal (sar_prompt.novel.normalized) to one in `excluded`."""
    from sar_prompt.novel import normalized

    drop = {normalized(n) for n in excluded}
    return [n for n in names if normalized(n) not in drop]
