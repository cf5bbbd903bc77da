"""Checkpoints of a prompt-tuning trainer, for Dassl's TrainerX: save, exact resume, load.

`TrainerCheckpoints` is mixed into `PromptTuningTrainer` (trainers/base.py). A checkpoint
holds only the prompt learner's tensors (ours, or a reference implementation's, matched
by `reference_state`), plus what an exact resume needs: random-number states, the AMP
scaler, the best result and the step. Loading a file that needs a full unpickle is refused
unless the user trusts it (MODEL.TRUST_CHECKPOINT_CODE; see sar_prompt.modeling.torch_load).
Each resume is recorded in the run folder's resumes.json. Every way a checkpoint can be unusable gets a
message that says what to do.
"""
import datetime
import glob
import json
import os.path as osp

import torch

from sar_prompt.errors import CheckpointError, MissingCheckpointError
from sar_prompt.io import atomic_write_json
from sar_prompt.dassl_glue import rng
from sar_prompt.modeling import torch_load
from sar_prompt.dassl_glue.reference_state import match_state_dict


class TrainerCheckpoints:
    """Overrides Dassl's save_model, resume_model_if_exist and load_model. Expects a
    TrainerX with `scaler` (None without AMP) and `best_result`."""

    # The folder the method's reference code saves its checkpoints in, where that is not
    # ours (MaPLe's and PromptSRC's save the whole model under another name).
    reference_model_name = ""

    def model_folder(self, directory, name):
        """directory/name, or the reference code's folder when only that one exists."""
        ours = osp.join(directory, name)
        if self.reference_model_name and not osp.isdir(ours):
            theirs = osp.join(directory, self.reference_model_name)
            if osp.isdir(theirs):
                return theirs
        return ours

    def checkpoint_trust(self):
        """Loading checkpoints that need a full unpickle (they can run code) only if the user
        said so (MODEL.TRUST_CHECKPOINT_CODE; see sar_prompt.modeling.torch_load)."""
        return torch_load.trusting(self.cfg.MODEL.TRUST_CHECKPOINT_CODE)

    def random_generators(self):
        """torch.Generators whose state a checkpoint must carry for an exact resume (besides
        the global ones): the training loader's and its sampler's, if they have their own."""
        found = {}
        loader = getattr(self, "train_loader_x", None)
        for name, owner in (("train_loader", loader), ("train_sampler", getattr(loader, "sampler", None))):
            generator = getattr(owner, "generator", None)
            if isinstance(generator, torch.Generator):
                found[name] = generator
        return found

    def training_state(self, epoch):
        """What an exact resume needs beyond the model, optimizer and scheduler."""
        return {
            "rng": rng.capture(self.random_generators()),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "best_result": float(self.best_result),
            "step": (epoch + 1) * getattr(self, "num_batches", 0),
        }

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's checkpoint plus `training_state`, so a resumed run is the same run."""
        # Imported here: importing Dassl registers our trainers, which import this module,
        # so a module-level import would make `import` of this module first a cycle.
        from dassl.utils import torchtools

        state = self.training_state(epoch)
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            torchtools.save_checkpoint(
                {"state_dict": self._models[name].state_dict(), "epoch": epoch + 1,
                 "optimizer": optim.state_dict() if optim is not None else None,
                 "scheduler": sched.state_dict() if sched is not None else None,
                 "val_result": val_result, "training_state": state},
                osp.join(directory, name), is_best=is_best, model_name=model_name)

    def resume_model_if_exist(self, directory):
        """Resume from the newest checkpoint in `directory`: weights, optimizer, scheduler,
        random-number states and the step, so the run continues exactly as if it had never
        stopped. The run folder's `resumes.json` records each resume."""
        names = self.get_model_names()
        folders = [osp.join(directory, name) for name in names]
        if not names or not all(_saved_files(f) for f in folders):
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        with self.checkpoint_trust():
            for name, folder in zip(names, folders):
                path = _newest_checkpoint(folder)
                checkpoint = _load_for_resume(path)
                self._models[name].load_state_dict(checkpoint["state_dict"])
                if self._optims[name] is not None and checkpoint.get("optimizer"):
                    self._optims[name].load_state_dict(checkpoint["optimizer"])
                if self._scheds[name] is not None and checkpoint.get("scheduler"):
                    self._scheds[name].load_state_dict(checkpoint["scheduler"])
                print(f'Resumed {name} from "{path}" (epoch {checkpoint["epoch"]})')
        start_epoch = checkpoint["epoch"]
        exact = self.restore_training_state(checkpoint.get("training_state"), path)
        self.record_resume(start_epoch, path, exact)
        return start_epoch

    def restore_training_state(self, state, path):
        if not state:
            print(f"[sar_prompt] {path} holds no random-number state (an older checkpoint): "
                  "training continues, but not bit-identically to an uninterrupted run.")
            return False
        problems = rng.restore(state["rng"], self.random_generators())
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best_result = state.get("best_result", self.best_result)
        if problems:
            print(f"[sar_prompt] {path}: {'; '.join(problems)}; the resumed run may differ from "
                  "an uninterrupted one.")
        return not problems

    def record_resume(self, epoch, path, exact):
        record_file = osp.join(self.output_dir, RESUME_RECORD)
        history = read_resumes(self.output_dir)
        history.append({"epoch": epoch, "checkpoint": osp.abspath(path), "exact": exact,
                        "time": datetime.datetime.now(datetime.timezone.utc)
                        .isoformat(timespec="seconds")})
        atomic_write_json(record_file, history)

    def load_model(self, directory, epoch=None):
        """Load the learnable prompt tensors, from our checkpoints or a reference
        implementation's (sar_prompt.dassl_glue.reference_state); class-dependent tensors are
        rebuilt for the current classes, so a base-class checkpoint evaluates on new classes."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        if not osp.isdir(directory):
            raise MissingCheckpointError(
                f"--model-dir {directory} does not exist. Point it at the output folder of a "
                f"training run (the folder that holds {'/, '.join(self.get_model_names())}/).")
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        with self.checkpoint_trust():
            for name in self.get_model_names():
                folder = self.model_folder(directory, name)
                path = osp.join(folder, model_file)
                if not osp.exists(path):
                    raise MissingCheckpointError(_missing_model_message(
                        directory, osp.basename(folder), path, epoch))
                checkpoint = torch_load.load(path)
                matched = match_state_dict(checkpoint["state_dict"], self._models[name], path,
                                           type(self).__name__)
                print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint["epoch"]})')
                if matched.ignored:
                    print(f"[sar_prompt] ignored from the checkpoint: {matched.describe_ignored()}")
                self._models[name].load_state_dict(matched.state)
                self.loaded_checkpoint = {"path": osp.abspath(path), "epoch": checkpoint["epoch"]}


RESUME_RECORD = "resumes.json"


def read_resumes(run_dir):
    """The resumes recorded in a run folder (oldest first); [] for a run never resumed."""
    try:
        with open(osp.join(run_dir, RESUME_RECORD), encoding="utf-8") as f:
            history = json.load(f)
    except (OSError, ValueError):
        return []
    return history if isinstance(history, list) else []


def _epoch_of(path):
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _saved_files(folder):
    """Epoch checkpoints in `folder`, oldest first."""
    files = [p for p in glob.glob(osp.join(folder, "model.pth.tar-*")) if _epoch_of(p) is not None]
    return sorted(files, key=_epoch_of)


def _saved_epochs(folder):
    return ", ".join(str(_epoch_of(p)) for p in _saved_files(folder)) or "none"


def _missing_model_message(directory, name, path, epoch):
    folder = osp.join(directory, name)
    if not osp.isdir(folder):
        return (f"{directory} holds no {name}/ folder, so no checkpoint to evaluate. Point "
                "--model-dir at the output folder of a finished training run.")
    saved = _saved_epochs(folder)
    if saved == "none":
        return (f"{folder} holds no checkpoint (model.pth.tar-N): did that training run save "
                "one? Train again, or point --model-dir at a finished run.")
    which = "--load-epoch N" if epoch is None else "another --load-epoch"
    return (f"No checkpoint at {path}. The epochs saved there are {saved}: pass {which} "
            "with one of them.")


def _newest_checkpoint(folder):
    """The file Dassl's `checkpoint` pointer names, checked, with a way out when it is not
    usable (the pointer is written after the file, so a good pointer names a whole file)."""
    pointer = osp.join(folder, "checkpoint")
    files = _saved_files(folder)
    restart = f"or delete {folder} to train from scratch"
    try:
        with open(pointer, encoding="utf-8") as f:
            name = f.readline().strip()
    except OSError:
        name = ""
    if not name:
        newest = osp.basename(files[-1])
        raise CheckpointError(
            f"Cannot resume: {pointer} is missing or empty. The newest checkpoint there is "
            f"{newest}: write that name into it (echo {newest} > {pointer}) to resume from "
            f"it, {restart}.")
    path = osp.join(folder, name)
    if not osp.isfile(path):
        raise CheckpointError(f"Cannot resume: {pointer} names {name}, which is not there "
                              f"(saved epochs: {_saved_epochs(folder)}). Write the name of one "
                              f"of them into {pointer}, {restart}.")
    return path


def _load_for_resume(path):
    try:
        return torch_load.load(path)
    except CheckpointError as exc:
        if "truncated" not in str(exc):
            raise
        folder = osp.dirname(path)
        earlier = [p for p in _saved_files(folder) if _epoch_of(p) < (_epoch_of(path) or 0)]
        offer = (f"The previous saved epoch is {_epoch_of(earlier[-1])}: to resume from it, "
                 f"delete {path} and write {osp.basename(earlier[-1])} into "
                 f"{osp.join(folder, 'checkpoint')}; or delete {folder} to train from scratch."
                 if earlier else f"No earlier epoch is saved: delete {folder} to train from "
                 "scratch.")
        raise CheckpointError(f"Cannot resume: {exc} {offer}") from exc
