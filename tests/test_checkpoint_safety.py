"""No code runs from a checkpoint: every load path refuses a file whose unpickling would
run code, naming the file and the trust option; with the option the same file does run
(so the planted payloads are real)."""
import builtins
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from conftest import REPO, TINY_TRAINER_OPTS
from sar_prompt.modeling import torch_load as checkpoints
from sar_prompt.errors import CheckpointError


class System:
    """Unpickling calls os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Exec:
    """Unpickling calls builtins.exec."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


class Touch:
    """Unpickling calls a method of an importable class."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


PAYLOADS = [System, Exec, Touch]


def plant(path, payload, where="val_result", ctx=None):
    """A Dassl-style checkpoint with `payload` at `where` (a top-level key, or the place
    where upstream Dassl legitimately pickled an object: the scheduler's successor)."""
    state = {"state_dict": {"ctx": torch.zeros(4, 64) if ctx is None else ctx}, "epoch": 1,
             "optimizer": None, "scheduler": None, "val_result": None}
    if where == "successor":
        state["scheduler"] = {"successor": payload, "warmup_epoch": 1}
    else:
        state[where] = payload
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    (path.parent / "checkpoint").write_text(path.name + "\n")
    return path


@pytest.mark.parametrize("where", ["val_result", "state_dict", "successor"])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_loader_refuses_every_payload(tmp_path, payload, where):
    marker = tmp_path / "marker"
    path = plant(tmp_path / "model.pth.tar-1", payload(marker), where)
    if where == "state_dict":  # a payload in place of the weights
        torch.save({"state_dict": {"ctx": payload(marker)}, "epoch": 1}, path)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    assert str(path) in str(err.value) and checkpoints.TRUST_KEY in str(err.value)
    assert not marker.exists()


def test_dassl_load_checkpoint_refuses_too(tmp_path):
    """Host suites' trainers load through Dassl's load_checkpoint, which is patched."""
    from dassl.utils import load_checkpoint, load_pretrained_weights

    marker = tmp_path / "marker"
    path = plant(tmp_path / "model.pth.tar-1", System(marker))
    with pytest.raises(CheckpointError):
        load_checkpoint(str(path))
    with pytest.raises(CheckpointError):
        load_pretrained_weights(torch.nn.Linear(2, 2), str(path))
    assert not marker.exists()


def test_trust_env_variable_loads_in_full(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    path = plant(tmp_path / "model.pth.tar-1", Exec(marker))
    monkeypatch.setenv(checkpoints.TRUST_ENV, "1")
    with pytest.warns(UserWarning, match="full unpickle"):
        checkpoints.load(path)
    assert marker.exists()


def test_every_trainer_load_path_refuses(build_trainer, tmp_path):
    marker = tmp_path / "marker"
    # --eval-only --model-dir
    trainer = build_trainer("CoOpSAR", output=tmp_path / "eval")
    model_dir = tmp_path / "planted"
    plant(model_dir / "prompt_learner" / "model.pth.tar-1", System(marker))
    with pytest.raises(CheckpointError, match="model.pth.tar-1"):
        trainer.load_model(str(model_dir), epoch=1)
    # resume: a planted checkpoint in the output folder
    with pytest.raises(CheckpointError, match="model.pth.tar-1"):
        trainer.resume_model_if_exist(str(model_dir))
    # MODEL.INIT_WEIGHTS
    init = plant(tmp_path / "init" / "weights.pth", Touch(marker))
    with pytest.raises(CheckpointError, match="weights.pth"):
        build_trainer("CoOp", "MODEL.INIT_WEIGHTS", str(init), output=tmp_path / "init_run")
    assert not marker.exists()


def run_train(*argv):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *argv],
                          capture_output=True, text=True, timeout=300)


def test_eval_only_refuses_then_trust_flag_runs_it(caltech_root, tiny_clip_path, tmp_path):
    marker = tmp_path / "marker"
    model_dir = tmp_path / "planted"
    plant(model_dir / "prompt_learner" / "model.pth.tar-1", System(marker))

    def argv(*flags):
        return ["--root", str(caltech_root), "--seed", "1", "--trainer", "CoOp", *flags,
                "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
                "--output-dir", str(tmp_path / "eval"), "--eval-only", "--model-dir",
                str(model_dir), "--load-epoch", "1", *TINY_TRAINER_OPTS,
                "MODEL.BACKBONE.PATH", str(tiny_clip_path), "DATASET.SUBSAMPLE_CLASSES", "new"]

    proc = run_train(*argv())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "model.pth.tar-1" in proc.stderr and "--trust-checkpoint-code" in proc.stderr
    assert not marker.exists()
    proc = run_train(*argv("--trust-checkpoint-code"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.exists()


def legacy_checkpoint(path, payload=None, zip_format=True):
    """What upstream Dassl saved: the warm-up scheduler's successor pickled whole (an LR
    scheduler holding its optimizer), in torch's zip format or the legacy one of older
    PyTorch versions; `payload` in val_result."""
    param = torch.nn.Parameter(torch.zeros(2))
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.SGD([param], lr=0.1), 10)
    state = {"state_dict": {"ctx": torch.zeros(4, 64)}, "epoch": 1, "optimizer": None,
             "scheduler": {"successor": successor, "warmup_epoch": 1}, "val_result": payload}
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    return path


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy format"])
def test_upstream_checkpoints_load_in_either_format(tmp_path, zip_format):
    from sar_prompt.modeling.torch_load import Placeholder

    path = legacy_checkpoint(tmp_path / "model.pth.tar-1", zip_format=zip_format)
    state = checkpoints.load(path)
    assert isinstance(state["scheduler"]["successor"], Placeholder)
    assert torch.equal(state["state_dict"]["ctx"], torch.zeros(4, 64))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy format"])
@pytest.mark.parametrize("payload, culprit", [(System, "posix.system"), (Exec, "builtins.exec"),
                                              (Touch, "builtins.getattr")],
                         ids=["system", "exec", "touch"])
def test_a_payload_beside_upstreams_scheduler_is_named_not_called_truncated(
        tmp_path, zip_format, payload, culprit):
    marker = tmp_path / "marker"
    path = legacy_checkpoint(tmp_path / "model.pth.tar-1", payload(marker), zip_format)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    message = str(err.value)
    assert message.startswith(f"Refusing to load the checkpoint {path}: ")
    assert culprit in message and "truncated" not in message
    assert "CosineAnnealingLR" not in message  # the legitimate object is not the culprit
    assert not marker.exists()


def test_a_pickled_class_is_refused_too(tmp_path):
    """A class itself (not called) where only tensors belong."""
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {"ctx": torch.zeros(2)}, "val_result": subprocess.Popen}, path)
    with pytest.raises(CheckpointError, match=r"Popen at \['val_result'\]"):
        checkpoints.load(path)


def test_the_refusal_names_both_documented_trust_switches_whole(tmp_path, monkeypatch):
    monkeypatch.delenv("SAR_PROMPT_TRUST_CHECKPOINT_CODE", raising=False)
    path = plant(tmp_path / "model.pth.tar-1", System(tmp_path / "marker"))
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    assert str(err.value).endswith(
        "Only if you trust where the file comes from (loading it can run arbitrary code), "
        "set MODEL.TRUST_CHECKPOINT_CODE True (train.py --trust-checkpoint-code) or "
        "SAR_PROMPT_TRUST_CHECKPOINT_CODE=1.")


@pytest.mark.parametrize("value, trusted", [("1", True), (" TRUE ", True), ("yes", True),
                                            ("0", False), ("", False), ("no", False)])
def test_the_trust_variable_as_documented(monkeypatch, value, trusted):
    monkeypatch.setenv("SAR_PROMPT_TRUST_CHECKPOINT_CODE", value)
    assert checkpoints.trusted() is trusted


def test_trusting_blocks_nest_and_restore_what_was_before(monkeypatch):
    monkeypatch.delenv(checkpoints.TRUST_ENV, raising=False)
    assert not checkpoints.trusted()
    with checkpoints.trusting(True):
        with checkpoints.trusting(True):
            assert checkpoints.trusted()
        assert checkpoints.trusted()  # the inner block gives back the outer's trust
        with checkpoints.trusting(False):
            assert not checkpoints.trusted()
        assert checkpoints.trusted()
    assert checkpoints.trusted() is False


def test_a_placeholders_attributes_from_each_form_of_pickled_state():
    placeholder = checkpoints._placeholder_class("torch.optim.lr_scheduler.StepLR")
    assert placeholder.__name__ == "Placeholder[torch.optim.lr_scheduler.StepLR]"

    def attributes(state):
        p = placeholder(1, key=2)  # the arguments of the pickled call are not kept
        if state is not None:
            p.__setstate__(state)
        return p.attributes()

    assert attributes({"last_epoch": 3}) == {"last_epoch": 3}
    # an object with __slots__ pickles (its __dict__ or None, its slots)
    assert attributes(({"a": 1, "b": 1}, {"b": 2, "c": 3})) == {"a": 1, "b": 2, "c": 3}
    assert attributes((None, {"c": 3})) == {"c": 3}
    assert attributes(({"a": 1}, None)) == {"a": 1}
    for opaque in (None, (1, 2, 3), ({"a": 1},), [("a", 1)], 5):  # no attributes to read
        assert attributes(opaque) == {}
    assert repr(placeholder()) == "<placeholder for torch.optim.lr_scheduler.StepLR>"


def test_where_a_refused_object_sits(tmp_path):
    path = tmp_path / "model.pth.tar-1"
    torch.save(subprocess.Popen, path)
    with pytest.raises(CheckpointError, match=r"Popen at the top level\)"):
        checkpoints.load(path)
    torch.save({"a": [{"b": (0, subprocess.Popen)}]}, path)
    with pytest.raises(CheckpointError, match=r"Popen at \['a'\]\[0\]\['b'\]\[1\]\)"):
        checkpoints.load(path)


# Many kinds of pickled objects (defined here so that they pickle by name).
KINDS = [type(f"Kind{i}", (), {"__module__": __name__}) for i in range(40)]
globals().update({k.__name__: k for k in KINDS})


@pytest.mark.parametrize("kinds", [checkpoints.MAX_PICKLED_CLASSES,
                                   checkpoints.MAX_PICKLED_CLASSES + 1])
def test_a_file_pickling_too_many_kinds_of_objects_is_refused_early(tmp_path, kinds):
    assert checkpoints.MAX_PICKLED_CLASSES == 32
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": {}, "val_result": [k() for k in KINDS[:kinds]]}, path)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    if kinds == 32:  # each kind rebuilt as a placeholder, then refused where it sits
        assert str(err.value).startswith(
            f"Refusing to load the checkpoint {path}: it pickles Python objects where only "
            "tensors and numbers belong (test_checkpoint_safety.Kind0 at ['val_result'][0]; "
            "test_checkpoint_safety.Kind1 at ['val_result'][1]; ")
        assert "Kind4 at ['val_result'][4]). Only if" in str(err.value)  # the first five
        assert "Kind5" not in str(err.value)
    else:
        assert (": it pickles over 32 kinds of Python objects, where only tensors and numbers "
                "belong." in str(err.value))


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    from sar_prompt.errors import MissingCheckpointError

    missing = tmp_path / "model.pth.tar-3"
    with pytest.raises(MissingCheckpointError) as err:
        checkpoints.load(missing)
    assert str(err.value) == f"No checkpoint file at {missing}."
    truncated = plant(tmp_path / "model.pth.tar-1", None)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(truncated)
    assert str(err.value).startswith(f"Cannot read the checkpoint {truncated}: it is truncated "
                                     "or not a PyTorch checkpoint (RuntimeError: ")
    assert str(err.value).endswith(").")


def test_the_full_unpickle_warning_points_at_the_caller(tmp_path, monkeypatch):
    path = plant(tmp_path / "model.pth.tar-1", Exec(tmp_path / "marker"))
    monkeypatch.setenv(checkpoints.TRUST_ENV, "1")
    with pytest.warns(UserWarning) as record:
        checkpoints.load(path)
    assert [str(w.message) for w in record] == [
        f"{path}: loading with a full unpickle because checkpoint code is trusted; only do "
        "this for files you trust."]
    assert record[0].filename == __file__


def test_a_pickled_scheduler_holding_objects_is_not_restored():
    scheduler = checkpoints._placeholder_class("torch.optim.lr_scheduler.LambdaLR")()
    hook = checkpoints._placeholder_class("builtins.print")()
    scheduler.__setstate__({"optimizer": object(), "last_epoch": 2, "lr_lambdas": [hook],
                            "base_lrs": [0.1], "hook": {"x": hook}})
    with pytest.raises(CheckpointError) as err:
        checkpoints.legacy_scheduler_state(scheduler)
    assert str(err.value).startswith(
        "the pickled scheduler torch.optim.lr_scheduler.LambdaLR holds Python objects in "
        "lr_lambdas, hook; it cannot be restored safely. Only if you trust")
    scheduler.__setstate__({"optimizer": object(), "last_epoch": 2, "base_lrs": [0.1]})
    assert checkpoints.legacy_scheduler_state(scheduler) == {"last_epoch": 2, "base_lrs": [0.1]}


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_map_location_loads_to_the_cpu_on_a_machine_without_cuda(tmp_path, monkeypatch,
                                                                      cuda):
    path = plant(tmp_path / "model.pth.tar-1", None)
    seen = []
    real_load = torch.load

    def spying_load(*args, **kwargs):
        seen.append(kwargs["map_location"])
        return real_load(*args, **{**kwargs, "map_location": "cpu"})

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch, "load", spying_load)
    checkpoints.load(path)
    checkpoints.load(path, map_location="meta")
    assert seen == [None if cuda else "cpu", "meta"]  # None: where each tensor was saved
