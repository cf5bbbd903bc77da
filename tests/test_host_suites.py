"""Drop-in into the MaPLe and PromptSRC suites: their repositories ship a modified top-level
`clip/` (its build_model takes their prompt design) that shadows OpenAI's. Our backbone
builds from OpenAI's whichever comes first; the host keeps its `clip` and its trainers."""
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

HOST_FILES = {
    # the shape of MaPLe's / PromptSRC's own clip package
    "clip/__init__.py": "from .clip import *\n",
    "clip/clip.py": textwrap.dedent("""
        from .model import build_model
        __all__ = ["tokenize", "load"]
        _MODELS = {}
        def tokenize(*args, **kwargs):
            raise RuntimeError("the host's tokenize")
        def load(*args, **kwargs):
            raise RuntimeError("the host's load")
    """),
    "clip/model.py": textwrap.dedent("""
        def build_model(state_dict: dict, design_details):
            raise RuntimeError("the host's build_model")
    """),
    "clip/simple_tokenizer.py": "class SimpleTokenizer:\n    pass\n",
    # the host's own trainers, registered under the names ours have
    "trainers/__init__.py": "",
    "trainers/maple.py": textwrap.dedent("""
        from dassl.engine import TRAINER_REGISTRY, TrainerX
        from clip import clip

        @TRAINER_REGISTRY.register()
        class MaPLe(TrainerX):
            host = True

        @TRAINER_REGISTRY.register()
        class PromptSRC(TrainerX):
            host = True
    """),
}

HOST_TRAIN = textwrap.dedent("""
    import sys
    HOST, DATA, CLIP, OUT, ORDER = sys.argv[1:6]
    assert sys.path[0] == HOST  # as when the host runs `python train.py` in its repository
    if ORDER == "host-first":
        import trainers.maple  # noqa: F401  (imports the host's clip)
        import sar_prompt
    else:
        import sar_prompt
        import trainers.maple  # noqa: F401
    import clip
    from dassl.config import get_cfg_default
    from dassl.engine import TRAINER_REGISTRY, build_trainer
    from dassl.utils import set_random_seed
    from yacs.config import CfgNode as CN
    from sar_prompt.modeling.backbone import import_clip

    assert clip.__file__.startswith(HOST) and clip.model.build_model.__code__.co_argcount == 2
    ours = import_clip()
    assert ours is not clip and ours.tokenize(["a photo"]).shape == (1, 77)
    assert TRAINER_REGISTRY.get("MaPLe").host and TRAINER_REGISTRY.get("PromptSRC").host
    if ORDER != "host-first":
        print("OK")
        sys.exit(0)

    def host_cfg():  # what the host's train.py declares, then sar_prompt's keys
        cfg = get_cfg_default()
        cfg.TRAINER.COOP = CN(dict(N_CTX=16, CSC=False, CTX_INIT="", PREC="fp16",
                                   CLASS_TOKEN_POSITION="end"))
        cfg.TRAINER.MAPLE = CN(dict(N_CTX=2, CTX_INIT="a photo of a", PREC="fp16",
                                    PROMPT_DEPTH=9))
        cfg.TRAINER.PROMPTSRC = CN(dict(
            N_CTX_VISION=4, N_CTX_TEXT=4, CTX_INIT="a photo of a", PREC="fp16",
            PROMPT_DEPTH_VISION=9, PROMPT_DEPTH_TEXT=9, TEXT_LOSS_WEIGHT=25,
            IMAGE_LOSS_WEIGHT=10, GPA_MEAN=15, GPA_STD=1))
        cfg.DATASET.SUBSAMPLE_CLASSES = "all"
        sar_prompt.extend_cfg(cfg)
        return cfg

    for name in ("MaPLeSAR", "PromptSRCSAR", "CoOpSAR"):
        cfg = host_cfg()
        cfg.DATASET.NAME, cfg.DATASET.ROOT, cfg.SEED = "SARDemo", DATA, 1
        cfg.OUTPUT_DIR, cfg.TRAINER.NAME = OUT + "/" + name, name
        cfg.merge_from_list([
            "INPUT.SIZE", "(32, 32)", "MODEL.BACKBONE.PATH", CLIP, "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "2",
            "DATASET.SUBSAMPLE_CLASSES", "base", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
            "TRAINER.MAPLE.PROMPT_DEPTH", "1", "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "1",
            "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2", "TEST.NO_TEST", "True"])
        cfg.freeze()
        set_random_seed(1)
        trainer = build_trainer(cfg)
        assert type(trainer).__module__.startswith("sar_prompt.trainers")
        trainer.train()
        print(name, "trained")
    assert sys.modules["clip"] is clip  # the host's, untouched
    print("OK")
""")


@pytest.mark.parametrize("order", ["host-first", "sar_prompt-first"])
def test_in_a_suite_whose_clip_shadows_openais(tmp_path, tiny_clip_path, order):
    from sar_prompt.orchestration.demo import prepare

    host = tmp_path / "host"
    for rel, text in HOST_FILES.items():
        (host / rel).parent.mkdir(parents=True, exist_ok=True)
        (host / rel).write_text(text)
    script = host / "train_like_host.py"
    script.write_text(HOST_TRAIN)
    data = tmp_path / "data"
    if order == "host-first":
        prepare(data)
    proc = subprocess.run(
        [sys.executable, str(script), str(host), str(data), str(tiny_clip_path),
         str(tmp_path / "out"), order], cwd=host, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (os.environ.get("PYTHONPATH"), str(REPO / "tests")) if p)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("OK")
    if order == "host-first":
        assert all(f"{name} trained" in proc.stdout
                   for name in ("MaPLeSAR", "PromptSRCSAR", "CoOpSAR"))
