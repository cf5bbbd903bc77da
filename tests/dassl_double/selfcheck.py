"""End-to-end self-check of the Dassl API the project uses (CPU only).

Runs unchanged against real Dassl or against the test double, so the two outputs can be compared:

    PYTHONPATH=/path/to/Dassl.pytorch python tests/dassl_double/selfcheck.py
    PYTHONPATH=tests/dassl_double     python tests/dassl_double/selfcheck.py

It also shows the two upstream defects the project's compat layer has to fix on new torch:
the warmup scheduler passing `verbose` to torch, and `load_checkpoint` not passing weights_only=False.
Not a pytest module on purpose (its name does not start with test_).
"""
import functools
import os
import os.path as osp
import shutil
import sys
import tempfile
import warnings

# Running this file puts its own folder (the double) first on sys.path; drop that
# entry so PYTHONPATH decides, and fall back to the double only if no dassl is found.
_HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _HERE:
    sys.path.pop(0)
try:
    import dassl  # noqa: F401
except ImportError:
    sys.path.insert(0, _HERE)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import dassl
import dassl.engine.trainer as trainer_module
import dassl.utils.torchtools as torchtools
from dassl.config import get_cfg_default
from dassl.data.datasets import DATASET_REGISTRY, Datum, DatasetBase
from dassl.data.transforms import build_transform
from dassl.engine import TRAINER_REGISTRY, TrainerX, build_trainer
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.optim import lr_scheduler as lr_scheduler_module
from dassl.utils import (
    MetricMeter, Registry, check_availability, collect_env_info, count_num_param,
    load_pretrained_weights, read_json, set_random_seed, setup_logger, write_json,
)

warnings.filterwarnings("ignore")  # keep the comparison output short
KIND = "test double" if getattr(dassl, "IS_TEST_DOUBLE", False) else "real Dassl"
WORK = tempfile.mkdtemp(prefix="dassl_selfcheck_")
DATA = osp.join(WORK, "data")
OUT = osp.join(WORK, "output")
LR_LOG = []  # lr in effect at the start of each trained epoch


def section(title):
    print(f"\n==== {title} ====")


def expect_error(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError(f"{fn} did not raise {exc_type.__name__}")


# ---------------------------------------------------------------- toy data
def make_images():
    """3 colour classes; labels first appear in the order 2, 0, 1 (few-shot grouping follows that)."""
    rng = np.random.default_rng(0)
    classnames = ["red", "green", "blue"]
    index = {}
    for split, per_class in [("train", 6), ("val", 2), ("test", 3)]:
        os.makedirs(osp.join(DATA, split), exist_ok=True)
        rows = []
        for i in range(per_class):
            for label in (2, 0, 1):
                pixels = rng.integers(0, 180, size=(8, 8, 3))
                pixels[..., label] += 40
                rel = osp.join(split, f"{classnames[label]}_{i}.png")
                Image.fromarray(pixels.astype(np.uint8)).save(osp.join(DATA, rel))
                rows.append([rel, label, classnames[label]])
        index[split] = rows
    write_json(index, osp.join(DATA, "split.json"))


@DATASET_REGISTRY.register()
class SelfCheckColors(DatasetBase):

    def __init__(self, cfg):
        index = read_json(osp.join(cfg.DATASET.ROOT, "split.json"))

        def datums(split):
            return [Datum(impath=osp.join(cfg.DATASET.ROOT, rel), label=lab, classname=name)
                    for rel, lab, name in index[split]]

        train = self.generate_fewshot_dataset(datums("train"), num_shots=cfg.DATASET.NUM_SHOTS)
        print("few-shot train:", [osp.basename(d.impath) for d in train])
        super().__init__(train_x=train, val=datums("val"), test=datums("test"))


# ---------------------------------------------------------------- toy trainer
@TRAINER_REGISTRY.register()
class SelfCheckLinear(TrainerX):

    def build_model(self):
        print("Building model")
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, self.num_classes)).to(self.device)
        print(f"# params: {count_num_param(self.model):,}")
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("linear", self.model, self.optim, self.sched)

    def before_epoch(self):
        LR_LOG.append(round(self.get_current_lr(), 6))

    def forward_backward(self, batch):
        image, label, _domain = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}


def make_cfg(max_epoch, final_model="last_step", resume=""):
    cfg = get_cfg_default()
    cfg.SEED = 1
    cfg.USE_CUDA = False
    cfg.OUTPUT_DIR = OUT
    cfg.RESUME = resume
    cfg.DATASET.NAME = "SelfCheckColors"
    cfg.DATASET.ROOT = DATA
    cfg.DATASET.NUM_SHOTS = 4
    cfg.INPUT.SIZE = (8, 8)
    cfg.INPUT.TRANSFORMS = ("random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 5
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR = 0.05
    cfg.OPTIM.MAX_EPOCH = max_epoch
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.OPTIM.WARMUP_CONS_LR = 0.01
    cfg.TEST.FINAL_MODEL = final_model
    cfg.TRAINER.NAME = "SelfCheckLinear"
    cfg.freeze()
    return cfg


# ---------------------------------------------------------------- compat fixes (what the project patches)
def warmup_init_without_verbose(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
    self.successor = successor
    self.warmup_epoch = warmup_epoch
    torch.optim.lr_scheduler._LRScheduler.__init__(self, optimizer, last_epoch)


def load_checkpoint_trusted(fpath, _original=torchtools.load_checkpoint):
    # Our own checkpoints pickle a scheduler object, so they need weights_only=False.
    real_load = torch.load
    torch.load = functools.partial(real_load, weights_only=False)
    try:
        return _original(fpath)
    finally:
        torch.load = real_load


def main():
    os.makedirs(OUT, exist_ok=True)
    setup_logger(OUT)
    print(f"Running against: {KIND} (dassl {dassl.__version__}, torch {torch.__version__})")
    assert isinstance(collect_env_info(), str)

    section("utils")
    reg = Registry("DEMO")
    reg.register(Registry)
    print("duplicate register ->", type(expect_error(KeyError, reg.register, Registry)).__name__)
    reg.register(Registry, force=True)
    print("unknown get ->", type(expect_error(KeyError, reg.get, "Nope")).__name__, reg.registered_names())
    print("check_availability ->", expect_error(ValueError, check_availability, "Linaer", ["Linear", "Conv"]))
    meter = MetricMeter()
    meter.update({"loss": 1.0, "acc": torch.tensor(50.0)})
    meter.update({"loss": 0.5, "acc": 100.0})
    print("MetricMeter ->", meter)
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.15, 0.05]])
    print("compute_accuracy ->", [a.tolist() for a in compute_accuracy((logits,), torch.tensor([1, 1]))])
    print("Datum('') ->", type(expect_error(AssertionError, Datum)).__name__)

    section("warmup scheduler (upstream passes verbose to torch)")
    cfg = make_cfg(max_epoch=2)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.OPTIM.LR)
    try:
        build_lr_scheduler(opt, cfg.OPTIM)
        print("unpatched warmup scheduler built fine (old torch)")
    except TypeError as e:
        print("unpatched warmup scheduler -> TypeError:", e)
    lr_scheduler_module._BaseWarmupScheduler.__init__ = warmup_init_without_verbose
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.OPTIM.LR)
    sched = build_lr_scheduler(opt, cfg.OPTIM.clone())
    seq = []
    for _ in range(3):
        seq.append(round(opt.param_groups[0]["lr"], 6))
        opt.step()
        sched.step()
    print("patched constant-warmup + cosine lr sequence:", seq)

    section("phase A: train 2 epochs from scratch")
    make_images()
    set_random_seed(1)
    trainer = build_trainer(make_cfg(max_epoch=2))
    tfm = build_transform(trainer.cfg, is_train=False)
    print("test transform output:", tuple(tfm(Image.new("RGB", (12, 10))).shape))
    print("dm:", trainer.dm.num_classes, trainer.dm.num_source_domains, sorted(trainer.dm.lab2cname.items()),
          len(trainer.train_loader_x), trainer.train_loader_u, len(trainer.val_loader), len(trainer.test_loader))
    batch = next(iter(trainer.test_loader))
    print("batch keys:", sorted(batch.keys()))
    trainer.train()
    ckpt_dir = osp.join(OUT, "linear")
    print("saved files:", sorted(os.listdir(ckpt_dir)))
    with open(osp.join(ckpt_dir, "checkpoint")) as f:
        print("checkpoint file names:", f.read().strip())

    section("load_checkpoint under torch's weights_only default")
    err = expect_error(Exception, torchtools.load_checkpoint, osp.join(ckpt_dir, "model.pth.tar-2"))
    print("unpatched load_checkpoint ->", type(err).__name__)
    torchtools.load_checkpoint = trainer_module.load_checkpoint = load_checkpoint_trusted
    ckpt = torchtools.load_checkpoint(osp.join(ckpt_dir, "model.pth.tar-2"))
    print("patched load_checkpoint keys:", sorted(ckpt.keys()), "epoch", ckpt["epoch"])
    err = expect_error(TypeError, trainer.load_model, OUT, epoch=2)
    print("load_model(epoch=2) -> TypeError (upstream formats val_result=None):", err)
    print("load_model(epoch=7) ->", type(expect_error(FileNotFoundError, trainer.load_model, OUT, epoch=7)).__name__)
    print("load_checkpoint(None) ->", type(expect_error(ValueError, torchtools.load_checkpoint, None)).__name__)

    section("phase B: resume to 3 epochs, keep the best val model")
    set_random_seed(1)
    trainer = build_trainer(make_cfg(max_epoch=3, final_model="best_val", resume=OUT))
    trainer.train()
    print("saved files:", sorted(os.listdir(ckpt_dir)))
    trainer.load_model(OUT)
    acc = trainer.test()
    print(f"final test accuracy: {acc:.1f}")
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    load_pretrained_weights(model, osp.join(ckpt_dir, "model-best.pth.tar"))
    print("lr at start of each epoch:", LR_LOG)
    print("log file exists:", osp.isfile(osp.join(OUT, "log.txt")))
    print(f"SELFCHECK OK ({KIND})")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
