"""What every CLIP prompt-tuning trainer shares, on top of Dassl's TrainerX: loading CLIP,
freezing it, optimising only the prompt learner, precision and AMP, per-step loss terms,
checkpoints that hold only learnable parameters, and a machine-readable test result."""
import datetime
import glob
import json
import os.path as osp
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_optimizer, build_lr_scheduler
from dassl.utils import load_pretrained_weights
from dassl.utils import torchtools

from .. import checkpoints, rng, run_result
from ..catalog import template_for
from ..config import PRECISIONS, check_choice, require_keys, required_trainer_keys
from ..errors import CheckpointError, ConfigError, MissingCheckpointError
from ..io import atomic_write_json
from ..modeling.backbone import effective_precision, load_clip
from ..modeling.prompted_clip import PromptedCLIP
from ..modeling.text_encoder import TextEncoder, handcrafted_features

# Buffers older CoOp-family checkpoints saved; they depend on the class set, so never load.
CLASS_DEPENDENT_KEYS = ("token_prefix", "token_suffix", "token_midfix")


def handcrafted_template(cfg):
    """The frozen hand-crafted prompt: TRAINER.COOP.TEMPLATE, else the dataset's template."""
    return cfg.TRAINER.COOP.TEMPLATE or template_for(cfg.DATASET.NAME)


@dataclass
class StepOutput:
    """One training step's logits, the class text features they used, and its loss terms
    as name -> (weight, value); the step's loss is the weighted sum."""
    logits: torch.Tensor
    text_features: torch.Tensor
    terms: "OrderedDict[str, tuple]" = field(default_factory=OrderedDict)

    def total(self):
        return sum(w * v for w, v in self.terms.values() if w != 0)


class PromptTuningTrainer(TrainerX):
    """Subclasses implement `build_prompt_learner` and, for extra loss terms, `step`."""

    uses_sar = False

    def check_cfg(self, cfg):
        require_keys(cfg, required_trainer_keys(sar=self.uses_sar), type(self).__name__)
        check_choice(cfg.TRAINER.COOP.PREC, PRECISIONS, "TRAINER.COOP.PREC")

    # -- model -------------------------------------------------------------------------
    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        raise NotImplementedError

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        self.precision = effective_precision(cfg.TRAINER.COOP.PREC, self.device)
        print(f"[sar_prompt] loading CLIP {cfg.MODEL.BACKBONE.NAME} ({self.precision})")
        clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH, self.precision)
        resolution = clip_model.visual.input_resolution
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise ConfigError(f"INPUT.SIZE is {tuple(cfg.INPUT.SIZE)}, but this CLIP takes "
                              f"{resolution}x{resolution} images; set INPUT.SIZE "
                              f"({resolution}, {resolution}).")
        for p in clip_model.parameters():
            p.requires_grad_(False)
        self.clip_model = clip_model
        self.text_encoder = TextEncoder(clip_model)
        learner = self.build_prompt_learner(clip_model, self.text_encoder, classnames)
        self.model = PromptedCLIP(clip_model, self.text_encoder, learner)
        if cfg.MODEL.INIT_WEIGHTS:
            with self.checkpoint_trust():
                load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        learnable = [p for p in self.model.prompt_learner.parameters() if p.requires_grad]
        print(f"[sar_prompt] learnable parameters: {sum(p.numel() for p in learnable):,}")
        self.optim = build_optimizer(learnable, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "amp" else None

    def handcrafted_features(self, names, source):
        """Normalised features of the frozen hand-crafted prompt for `names`. Each name is
        encoded once per run, so KgCoOp's term and SAR's target share the base classes'."""
        cache = self.__dict__.setdefault("_handcrafted_cache", {})
        todo = [n for n in dict.fromkeys(names) if n not in cache]
        if todo:
            feats = handcrafted_features(self.text_encoder, todo, handcrafted_template(self.cfg),
                                         source)
            cache.update(zip(todo, feats))
        return torch.stack([cache[n] for n in names])

    def autocast(self):
        if self.precision == "amp":
            return torch.amp.autocast("cuda")
        return nullcontext()

    # -- training ----------------------------------------------------------------------
    def step(self, image, label) -> StepOutput:
        """The method's forward pass and loss terms for one batch (CoOp: cross-entropy)."""
        text = self.model.text_features()
        logits = self.model.logits(self.model.encode_images(image), text)
        out = StepOutput(logits, text)
        out.terms["ce"] = (1.0, torch.nn.functional.cross_entropy(logits, label))
        return out

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            out = self.step(image, label)
            loss = out.total()
        if self.scaler is not None:
            self.optim.zero_grad()
            self.detect_anomaly(loss)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(out.logits, label)[0].item()}
        if len(out.terms) > 1:
            summary.update({name: value.item() for name, (_, value) in out.terms.items()})
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def model_inference(self, input):
        return self.model(input)

    # -- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def test(self, split=None):
        with self.model.frozen_text_features():
            accuracy = super().test(split)
        resolved = split or self.cfg.TEST.SPLIT
        if resolved != "val" or self.val_loader is None:
            checkpoint = getattr(self, "loaded_checkpoint", None)
            # after training: the last epoch run, or the resumed one if none was left to run
            epoch = checkpoint["epoch"] if checkpoint else max(self.epoch + 1, self.start_epoch)
            resumes = [] if checkpoint else read_resumes(self.output_dir)
            run_result.write_run_result(self.cfg, accuracy, epoch, checkpoint, resumes)
        return accuracy

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_trust(self):
        """Loading checkpoints that need a full unpickle (they can run code) only if the user
        said so (MODEL.TRUST_CHECKPOINT_CODE; see sar_prompt.checkpoints)."""
        return checkpoints.trusting(self.cfg.MODEL.TRUST_CHECKPOINT_CODE)

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
        missing = rng.restore(state["rng"], self.random_generators())
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.best_result = state.get("best_result", self.best_result)
        if missing:
            print(f"[sar_prompt] {path} has no state for {', '.join(missing)}; the resumed run "
                  "may differ from an uninterrupted one.")
        return not missing

    def record_resume(self, epoch, path, exact):
        record_file = osp.join(self.output_dir, RESUME_RECORD)
        history = read_resumes(self.output_dir)
        history.append({"epoch": epoch, "checkpoint": osp.abspath(path), "exact": exact,
                        "time": datetime.datetime.now(datetime.timezone.utc)
                        .isoformat(timespec="seconds")})
        atomic_write_json(record_file, history)

    def load_model(self, directory, epoch=None):
        """Load the learnable prompt parameters; class-dependent tensors are rebuilt for the
        current classes, so a base-class checkpoint evaluates on new classes."""
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
                path = osp.join(directory, name, model_file)
                if not osp.exists(path):
                    raise MissingCheckpointError(_missing_model_message(directory, name, path,
                                                                        epoch))
                checkpoint = checkpoints.load(path)
                state = {k: v for k, v in checkpoint["state_dict"].items()
                         if k.split(".")[-1] not in CLASS_DEPENDENT_KEYS}
                print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint["epoch"]})')
                self._models[name].load_state_dict(state)
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
        return checkpoints.load(path)
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
