"""What every CLIP trainer shares, on top of Dassl's TrainerX.

`CLIPTrainer`: the method's config node and its checks at start, loading CLIP frozen in the
run's precision, the hand-crafted prompts of the method, and evaluation that writes a
machine-readable result. `PromptTuningTrainer` adds a prompt learner (see
`sar_prompt.modeling.learner_interface`): optimising only its learnable tensors, AMP,
per-step loss terms, checkpoints that hold only those tensors (ours or a reference
implementation's), and an exact resume (random-number states in the checkpoint).
"""
import datetime
import glob
import json
import math
import os.path as osp
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Optional

import torch
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_pretrained_weights, torchtools

from sar_prompt import checkpoints, rng, run_result
from sar_prompt.config import (check_method_cfg, check_sar_cfg, check_text_encoder_cfg,
                               require_keys, required_trainer_keys)
from sar_prompt.errors import CheckpointError, ConfigError, MissingCheckpointError
from sar_prompt.io import atomic_write_json
from sar_prompt.modeling.backbone import effective_precision, load_clip
from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.prompted_clip import PromptedCLIP, mean_over_images
from sar_prompt.modeling.text_encoder import TextEncoder, handcrafted_features
from sar_prompt.reference_state import match_state_dict
from sar_prompt.templates import templates_for


@dataclass
class StepOutput:
    """One training step: its logits, the features behind them, and its loss terms as
    name -> (weight, value); the step's loss is the weighted sum.

    image_features: (B, E), normalised.
    text_features: what the logits used: (C, E), or (B, C, E) for an image-conditioned
        method (one set per image).
    class_text_features: (C, E), the class text features that regularisers compare with
        the hand-crafted ones (KgCoOp's term, SAR): `text_features`, or for an
        image-conditioned method their normalised mean over the batch's images.
    extra_text: features of `extra_text_requests`, in their order, shaped as text_features.
    """
    logits: torch.Tensor
    image_features: torch.Tensor
    text_features: torch.Tensor
    class_text_features: Optional[torch.Tensor] = None
    terms: "OrderedDict[str, tuple]" = field(default_factory=OrderedDict)
    extra_text: list = field(default_factory=list)

    def total(self):
        return sum(w * v for w, v in self.terms.values() if w != 0)


class CLIPTrainer(TrainerX):
    """Subclasses set `config_node` (the TRAINER.<node> they read, named as in their
    reference repository; "" for none) and `template_style` (sar_prompt.templates)."""

    config_node = ""
    template_style = "coop"
    uses_sar = False

    @property
    def method_cfg(self):
        return self.cfg.TRAINER[self.config_node]

    def check_cfg(self, cfg):
        require_keys(cfg, required_trainer_keys(self.config_node, sar=self.uses_sar),
                     type(self).__name__)
        check_text_encoder_cfg(cfg)
        if self.config_node:
            check_method_cfg(cfg, self.config_node)
        if self.uses_sar:
            check_sar_cfg(cfg)

    def build_clip(self):
        """Load CLIP frozen, in the run's precision (the node's PREC; fp16 without one, as
        the references' zero-shot CLIP), with its text and image encoders."""
        cfg = self.cfg
        requested = self.method_cfg.PREC if self.config_node else "fp16"
        self.precision = effective_precision(requested, self.device)
        print(f"[sar_prompt] loading CLIP {cfg.MODEL.BACKBONE.NAME} ({self.precision})")
        # a weights file that pickles code needs the same trust as a checkpoint
        with checkpoints.trusting(cfg.MODEL.get("TRUST_CHECKPOINT_CODE", False)):
            clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH,
                                   self.precision)
        resolution = clip_model.visual.input_resolution
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise ConfigError(f"INPUT.SIZE is {tuple(cfg.INPUT.SIZE)}, but this CLIP takes "
                              f"{resolution}x{resolution} images; set INPUT.SIZE "
                              f"({resolution}, {resolution}).")
        for p in clip_model.parameters():
            p.requires_grad_(False)
        self.clip_model = clip_model
        options = cfg.MODEL.TEXT_ENCODER
        self.text_encoder = TextEncoder(clip_model, chunk_size=options.CHUNK_SIZE,
                                        checkpoint=options.CHECKPOINT)
        self.image_encoder = ImageEncoder(clip_model.visual)
        return clip_model

    def handcrafted_templates(self):
        """The method's frozen hand-crafted prompt(s) for this dataset, or the node's TEMPLATE."""
        override = self.method_cfg.get("TEMPLATE", "") if self.config_node else ""
        return templates_for(self.template_style, self.cfg.DATASET.NAME, override)

    def handcrafted_features(self, names, source):
        """Normalised features of the frozen hand-crafted prompts for `names`. Each name is
        encoded once per run, so KgCoOp's term and SAR's target share the base classes'."""
        cache = self.__dict__.setdefault("_handcrafted_cache", {})
        todo = [n for n in dict.fromkeys(names) if n not in cache]
        if todo:
            feats = handcrafted_features(self.text_encoder, todo, self.handcrafted_templates(),
                                         source)
            cache.update(zip(todo, feats))
        return torch.stack([cache[n] for n in names])

    # -- evaluation --------------------------------------------------------------------
    def evaluation(self):
        """Context for a whole evaluation (e.g. text features computed once)."""
        return nullcontext()

    def result_epoch(self):
        checkpoint = getattr(self, "loaded_checkpoint", None)
        # after training: the last epoch run, or the resumed one if none was left to run
        return checkpoint["epoch"] if checkpoint else max(self.epoch + 1, self.start_epoch)

    @torch.no_grad()
    def test(self, split=None):
        with self.evaluation():
            accuracy = super().test(split)
        resolved = split or self.cfg.TEST.SPLIT
        if resolved != "val" or self.val_loader is None:
            checkpoint = getattr(self, "loaded_checkpoint", None)
            resumes = [] if checkpoint else read_resumes(self.output_dir)
            run_result.write_run_result(self.cfg, accuracy, self.result_epoch(), checkpoint,
                                        resumes)
        return accuracy


class PromptTuningTrainer(CLIPTrainer):
    """Subclasses implement `build_prompt_learner` and, for extra loss terms, `step`."""

    # -- model -------------------------------------------------------------------------
    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        raise NotImplementedError

    def build_model(self):
        cfg = self.cfg
        clip_model = self.build_clip()
        learner = self.build_prompt_learner(clip_model, self.text_encoder,
                                            self.dm.dataset.classnames)
        self.model = PromptedCLIP(clip_model, self.text_encoder, learner, self.image_encoder)
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

    def autocast(self):
        if self.precision == "amp":
            return torch.amp.autocast("cuda")
        return nullcontext()

    # -- training ----------------------------------------------------------------------
    def extra_text_requests(self):
        """Other prompt sets, [(tokens, index), ...], to encode in the same text pass as the
        classes' (SAR's novel classes); their features come back in `StepOutput.extra_text`."""
        return []

    def step(self, image, label) -> StepOutput:
        """The method's forward pass and loss terms for one batch (CoOp: cross-entropy)."""
        model = self.model
        image_features = model.encode_images(image)
        condition = image_features if model.conditioned else None
        text, *extra = model.text_features_of([(None, None), *self.extra_text_requests()],
                                              condition)
        class_text = mean_over_images(text) if model.conditioned else text
        logits = model.logits(image_features, text)
        out = StepOutput(logits, image_features, text, class_text, extra_text=extra)
        out.terms["ce"] = (1.0, torch.nn.functional.cross_entropy(logits, label))
        return out

    def logged_this_step(self):
        """Whether Dassl prints this batch's losses (its rule in TrainerX.run_epoch)."""
        freq = self.cfg.TRAIN.PRINT_FREQ
        batches = getattr(self, "num_batches", None)
        if batches is None:
            return True
        return (getattr(self, "batch_idx", 0) + 1) % freq == 0 or batches < freq

    def forward_backward(self, batch):
        """One optimisation step. The logged values are read from the device in one batch,
        after the backward pass and before the update (a non-finite loss stops the run
        there, as Dassl's anomaly check does), so the step waits for the device once."""
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            out = self.step(image, label)
            loss = out.total()
        self.model_zero_grad()
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        logged = {"loss": loss, "acc": compute_accuracy(out.logits, label)[0]}
        if len(out.terms) > 1:
            logged.update((name, value) for name, (_, value) in out.terms.items())
        summary = dict(zip(logged, torch.stack([v.detach().float().reshape(())
                                                for v in logged.values()]).tolist()))
        if not math.isfinite(summary["loss"]) and self.scaler is None:
            raise FloatingPointError("Loss is infinite or NaN!")
        if self.scaler is not None:  # AMP skips non-finite steps and lowers its scale
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.model_update()
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch):
        # asynchronous from the loader's pinned memory (Dassl pins it on CUDA)
        return (batch["img"].to(self.device, non_blocking=True),
                batch["label"].to(self.device, non_blocking=True))

    def model_inference(self, input):
        return self.model(input)

    def evaluation(self):
        return self.model.frozen_text_features()

    # -- checkpoints -------------------------------------------------------------------
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
        """Load the learnable prompt tensors, from our checkpoints or a reference
        implementation's (sar_prompt.reference_state); class-dependent tensors are rebuilt
        for the current classes, so a base-class checkpoint evaluates on new classes."""
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
                checkpoint = checkpoints.load(path)
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
