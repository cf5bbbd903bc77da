"""What every CLIP trainer shares, on top of Dassl's TrainerX.

`CLIPTrainer`: the method's config node and its checks at start, loading CLIP frozen in the
run's precision, the hand-crafted prompts of the method, and evaluation that writes a
machine-readable result. `PromptTuningTrainer` adds a prompt learner (see
`sar_prompt.modeling.protocol`): optimising only its learnable tensors, AMP, per-step loss
terms, and checkpoints that hold only those tensors (ours or a reference implementation's).
"""
import glob
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

from sar_prompt import run_result
from sar_prompt.config import check_method_cfg, check_sar_cfg, require_keys, required_trainer_keys
from sar_prompt.errors import ConfigError
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
    """
    logits: torch.Tensor
    image_features: torch.Tensor
    text_features: torch.Tensor
    class_text_features: Optional[torch.Tensor] = None
    terms: "OrderedDict[str, tuple]" = field(default_factory=OrderedDict)

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
            run_result.write_run_result(self.cfg, accuracy, self.result_epoch(),
                                        getattr(self, "loaded_checkpoint", None))
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
    def step(self, image, label) -> StepOutput:
        """The method's forward pass and loss terms for one batch (CoOp: cross-entropy)."""
        model = self.model
        image_features = model.encode_images(image)
        if model.conditioned:
            text = model.text_features(condition=image_features)
            class_text = mean_over_images(text)
        else:
            text = class_text = model.text_features()
        logits = model.logits(image_features, text)
        out = StepOutput(logits, image_features, text, class_text)
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

    def load_model(self, directory, epoch=None):
        """Load the learnable prompt tensors, from our checkpoints or a reference
        implementation's; class-dependent tensors are rebuilt for the current classes, so
        a base-class checkpoint evaluates on new classes."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            path = osp.join(self.model_folder(directory, name), model_file)
            if not osp.exists(path):
                raise FileNotFoundError(
                    f"No checkpoint at {path}. Train first, or check --model-dir / --load-epoch "
                    f"(the epochs saved there: {_saved_epochs(osp.join(directory, name))}).")
            checkpoint = torchtools.load_checkpoint(path)
            matched = match_state_dict(checkpoint["state_dict"], self._models[name], path,
                                       type(self).__name__)
            print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint["epoch"]})')
            if matched.ignored:
                print(f"[sar_prompt] ignored from the checkpoint: {matched.describe_ignored()}")
            self._models[name].load_state_dict(matched.state)
            self.loaded_checkpoint = {"path": osp.abspath(path), "epoch": checkpoint["epoch"]}


def _saved_epochs(folder):
    found = sorted(int(p.rsplit("-", 1)[1]) for p in glob.glob(osp.join(folder, "model.pth.tar-*"))
                   if p.rsplit("-", 1)[1].isdigit())
    return ", ".join(map(str, found)) or "none"
