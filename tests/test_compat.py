"""sar_prompt makes upstream Dassl work on current PyTorch (tested against the double, which
reproduces upstream's defects, and against real Dassl when it is installed)."""
import inspect
import warnings

import pytest
import torch

from sar_prompt.modeling.torch_load import Placeholder

import sar_prompt  # noqa: F401  (applies the patches)
from dassl.config import get_cfg_default
from dassl.optim import build_lr_scheduler, build_optimizer


def optim_cfg(max_epoch=4):
    cfg = get_cfg_default()
    o = cfg.OPTIM
    o.NAME, o.LR, o.MAX_EPOCH, o.LR_SCHEDULER = "sgd", 0.002, max_epoch, "cosine"
    o.WARMUP_EPOCH, o.WARMUP_TYPE, o.WARMUP_CONS_LR = 1, "constant", 1e-5
    return o


def build(max_epoch=4):
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = build_optimizer([param], optim_cfg(max_epoch))
    return optimizer, build_lr_scheduler(optimizer, optim_cfg(max_epoch))


def lrs(optimizer, scheduler, n):
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_upstream_warmup_scheduler_needs_the_patch_on_this_torch():
    from dassl.optim.lr_scheduler import _BaseWarmupScheduler

    takes_verbose = "verbose" in inspect.signature(
        torch.optim.lr_scheduler.LRScheduler.__init__).parameters
    if takes_verbose:
        pytest.skip("this torch still accepts verbose; nothing to patch")
    original = _BaseWarmupScheduler._sar_prompt_original_init
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    successor = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(TypeError):
        original(_BaseWarmupScheduler.__new__(_BaseWarmupScheduler), optimizer, successor, 1)


def test_warmup_then_cosine():
    optimizer, scheduler = build()
    seq = lrs(optimizer, scheduler, 5)
    assert seq[0] == pytest.approx(1e-5)  # constant warm-up epoch
    assert seq[1] == pytest.approx(0.002)
    assert seq[1] > seq[2] > seq[3] > seq[4]


def test_scheduler_state_is_weights_only_loadable_and_resumes(tmp_path):
    optimizer, scheduler = build()
    lrs(optimizer, scheduler, 2)
    state = scheduler.state_dict()
    assert "successor" not in state and "successor_state" in state
    path = tmp_path / "sched.pt"
    torch.save({"scheduler": state, "optimizer": optimizer.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)

    expected = lrs(optimizer, scheduler, 3)
    optimizer2, scheduler2 = build()
    optimizer2.load_state_dict(loaded["optimizer"])
    scheduler2.load_state_dict(loaded["scheduler"])
    # Upstream restored a pickled successor bound to a copy of the optimizer, so the
    # real optimizer's lr froze after resuming; here the schedule continues.
    assert lrs(optimizer2, scheduler2, 3) == pytest.approx(expected)


def test_checkpoints_from_unpatched_dassl_still_load(tmp_path):
    """Upstream pickled the scheduler's successor (an LR scheduler holding the optimizer).
    It comes back as inert data, without a full unpickle, and the schedule continues."""
    from dassl.utils import load_checkpoint

    optimizer, scheduler = build()
    lrs(optimizer, scheduler, 2)
    legacy = {k: v for k, v in scheduler.__dict__.items() if k != "optimizer"}  # pickled successor
    path = tmp_path / "model.pth.tar-2"
    torch.save({"state_dict": {}, "epoch": 2, "scheduler": legacy,
                "optimizer": optimizer.state_dict()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint = load_checkpoint(str(path))
    assert isinstance(checkpoint["scheduler"]["successor"], Placeholder)
    expected = lrs(optimizer, scheduler, 3)
    optimizer2, scheduler2 = build()
    optimizer2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    assert lrs(optimizer2, scheduler2, 3) == pytest.approx(expected)


def test_plain_checkpoints_load_weights_only_without_warning(tmp_path):
    from dassl.utils import load_checkpoint

    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"ctx": torch.ones(2)}, "epoch": 1, "val_result": None}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(str(path))["epoch"] == 1
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "missing"))


def test_every_alias_of_the_checkpoint_functions_is_patched():
    import dassl.engine.trainer as trainer_module
    import dassl.utils as utils
    from dassl.utils import torchtools

    for name in ("load_checkpoint", "save_checkpoint"):
        for module in (utils, torchtools, trainer_module):
            assert getattr(getattr(module, name), "_sar_prompt_patched", False), (module, name)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    from dassl.utils import load_checkpoint, save_checkpoint

    state = {"state_dict": {"module.ctx": torch.ones(2)}, "epoch": 3, "val_result": 1.5}
    save_checkpoint(dict(state), str(tmp_path), is_best=True)
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-3\n"
    assert list(load_checkpoint(str(tmp_path / "model.pth.tar-3"))["state_dict"]) == ["ctx"]
    assert (tmp_path / "model-best.pth.tar").is_file()

    # a crash while writing epoch 4 leaves epoch 3 and its pointer intact
    def crash(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"state_dict": {}, "epoch": 4}, str(tmp_path))
    assert not (tmp_path / "model.pth.tar-4").exists()
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-3\n"
