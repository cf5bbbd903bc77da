"""Test set-up: real Dassl when it is installed, else the test double under tests/dassl_double;
a tiny random CLIP saved to a file; tiny datasets in the CoOp family's layout."""
import os
import sys
from pathlib import Path

import pytest

# The tiny models' tensor ops are far too small to gain from several threads, and on a
# 2-core machine the threads only contend: one thread per process, subprocesses too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# CPU runs are fp32 unless a test asks for the half-precision paths itself (the fp32 goldens
# assume it), whatever the developer's shell has set.
os.environ.pop("SAR_PROMPT_CPU_HALF", None)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DOUBLE = TESTS / "dassl_double"

try:
    import dassl  # noqa: F401

    USING_DOUBLE = False
except ImportError:
    sys.path.insert(0, str(DOUBLE))
    # Subprocesses (train.py, scripts/base2new.sh) must find the same Dassl.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(DOUBLE), os.environ.get("PYTHONPATH")) if p)
    import dassl  # noqa: F401

    USING_DOUBLE = True

sys.path.insert(0, str(TESTS))

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

from fixtures import write_caltech101  # noqa: E402


SLOW_ENV = "SAR_PROMPT_SLOW_TESTS"  # 1: also run the end-to-end tests marked slow


def pytest_configure(config):
    config.addinivalue_line("markers", f"slow: a long end-to-end test, run only with {SLOW_ENV}=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow end-to-end test; set {SLOW_ENV}=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"dassl: {'test double (tests/dassl_double)' if USING_DOUBLE else dassl.__file__}"


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory):
    from sar_prompt.orchestration.demo import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny_clip.pt", seed=0)


@pytest.fixture(scope="session")
def tiny_resnet_clip():
    """A tiny CLIP with a ResNet image tower (as RN50's, in miniature), seeded, in eval mode."""
    from sar_prompt.modeling.backbone import import_clip
    from sar_prompt.orchestration.demo import TINY_CLIP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return import_clip().model.CLIP(**{
            **TINY_CLIP, "vision_layers": (1, 1, 1, 1), "vision_width": 16,
            "vision_patch_size": None}).eval().requires_grad_(False)


@pytest.fixture(scope="session")
def caltech_root(tmp_path_factory):
    """A read-only-by-convention Caltech101 fixture shared by the session."""
    return write_caltech101(tmp_path_factory.mktemp("data"))


@pytest.fixture
def fresh_caltech_root(tmp_path):
    """A Caltech101 fixture a test may modify."""
    return write_caltech101(tmp_path / "data")


TINY_TRAINER_OPTS = [
    "INPUT.SIZE", "(32, 32)", "INPUT.TRANSFORMS", "['random_flip', 'normalize']",
    "INPUT.PIXEL_MEAN", "[0.48145466, 0.4578275, 0.40821073]",
    "INPUT.PIXEL_STD", "[0.26862954, 0.26130258, 0.27577711]",
    "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "16",
    "DATALOADER.TEST.BATCH_SIZE", "50", "OPTIM.NAME", "sgd", "OPTIM.LR", "0.002",
    "OPTIM.MAX_EPOCH", "2", "OPTIM.LR_SCHEDULER", "cosine", "OPTIM.WARMUP_EPOCH", "1",
    "OPTIM.WARMUP_TYPE", "constant", "OPTIM.WARMUP_CONS_LR", "1e-5", "USE_CUDA", "False",
    "TRAINER.COOP.CTX_INIT", "a photo of a", "TRAINER.COOP.PREC", "fp32", "TRAIN.PRINT_FREQ", "50",
    "TRAINER.COCOOP.CTX_INIT", "a photo of a", "TRAINER.COCOOP.PREC", "fp32",
    "TRAINER.SAR.NUM_NOVEL", "16",
]


@pytest.fixture
def make_cfg(tiny_clip_path, caltech_root, tmp_path):
    """Build a frozen cfg through train.py's own layering, on the Caltech101 fixture."""
    from sar_prompt.train import build_parser, setup_cfg

    def make(trainer="CoOp", *opts, root=None, seed=1, output=None, subsample="base", shots=16):
        argv = ["--root", str(root or caltech_root), "--seed", str(seed), "--trainer", trainer,
                "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
                "--output-dir", str(output or tmp_path / "out"), *TINY_TRAINER_OPTS,
                "MODEL.BACKBONE.PATH", str(tiny_clip_path), "DATASET.NUM_SHOTS", str(shots),
                "DATASET.SUBSAMPLE_CLASSES", subsample, *opts]
        return setup_cfg(build_parser().parse_args(argv))

    return make


@pytest.fixture
def one_thread():
    """The tiny CLIP runs fastest on one thread, and a busy machine is not oversubscribed."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def build_trainer(make_cfg):
    """A Dassl trainer built from `make_cfg(...)`, with Python/NumPy/torch seeded like train.py."""
    import sar_prompt  # noqa: F401
    from dassl.engine import build_trainer as dassl_build_trainer
    from dassl.utils import set_random_seed

    def build(trainer="CoOp", *opts, **kwargs):
        cfg = make_cfg(trainer, *opts, **kwargs)
        set_random_seed(cfg.SEED)
        return dassl_build_trainer(cfg)

    return build


def build_in_suite(cfg, trainer_config, trainer, clip_path, tmp_path, shots):
    """Build `trainer` as a host suite's train.py would, from `cfg` (the suite's keys and
    sar_prompt's already declared): the demo dataset, a reference trainer config file
    unchanged, then only what a tiny CPU run needs (image size, weights, length)."""
    from dassl.engine import build_trainer
    from dassl.utils import set_random_seed
    from sar_prompt.orchestration.demo import prepare

    cfg.merge_from_file(str(REPO / "configs/datasets/demo.yaml"))
    cfg.merge_from_file(str(REPO / "configs/trainers" / trainer_config))
    prepare(tmp_path / "data")
    cfg.DATASET.ROOT, cfg.OUTPUT_DIR, cfg.SEED = str(tmp_path / "data"), str(tmp_path / "out"), 1
    cfg.TRAINER.NAME = trainer
    cfg.merge_from_list(["INPUT.SIZE", "(32, 32)", "MODEL.BACKBONE.PATH", str(clip_path),
                         "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "1",
                         "DATASET.NUM_SHOTS", str(shots), "DATASET.SUBSAMPLE_CLASSES", "base",
                         "TRAIN.PRINT_FREQ", "100"])
    cfg.freeze()
    set_random_seed(1)
    return build_trainer(cfg)
