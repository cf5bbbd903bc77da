"""What every CLIP trainer shares, on top of Dassl's TrainerX: what a method author reads.

`CLIPTrainer`: the method's config node and its checks at start, loading CLIP frozen in the
run's precision, the hand-crafted prompts of the method, and evaluation; after the final
evaluation the `record_result` hook writes the run's results.json. `PromptTuningTrainer`
adds a prompt learner (see `sar_prompt.modeling.learner_interface`), optimising only its
learnable tensors, AMP, and a training step as loss terms (`step` -> `StepOutput`).
Checkpoints (only the learnable tensors; ours or a reference implementation's) and the
exact resume are `sar_prompt.dassl_glue.trainer_checkpoints.TrainerCheckpoints`.
"""
import math
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_pretrained_weights

from sar_prompt.config import (check_method_cfg, check_sar_cfg, check_text_encoder_cfg,
                               require_keys, required_trainer_keys)
from sar_prompt.dassl_glue.results_json import write_run_result
from sar_prompt.dassl_glue.trainer_checkpoints import TrainerCheckpoints, read_resumes
from sar_prompt.errors import ConfigError
from sar_prompt.modeling import precision, torch_load
from sar_prompt.modeling.backbone import load_clip
from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.prompted_clip import PromptedCLIP, mean_over_images
from sar_prompt.modeling.text_encoder import TextEncoder, handcrafted_features
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
    extra_text: features of the step's `extra_text` requests, in their order, shaped as
        text_features.
    """
    logits: torch.Tensor
    image_features: torch.Tensor
    text_features: torch.Tensor
    class_text_features: torch.Tensor
    extra_text: list
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
        self.precision = precision.effective_precision(requested, self.device)
        print(f"[sar_prompt] loading CLIP {cfg.MODEL.BACKBONE.NAME} ({self.precision})")
        # a weights file that pickles code needs the same trust as a checkpoint
        with torch_load.trusting(cfg.MODEL.get("TRUST_CHECKPOINT_CODE", False)):
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

    def handcrafted_features(self, names, source, dtype=None):
        """Normalised features of the frozen hand-crafted prompts for `names`, in CLIP's
        dtype, or in `dtype` from a copy of the text encoder in that dtype (PromptSRC's fp32
        ones in an fp16 run). Each name is encoded once per run and dtype, so KgCoOp's term
        and SAR's target share the base classes'."""
        dtype = dtype or self.text_encoder.dtype
        cache = self.__dict__.setdefault("_handcrafted_cache", {})
        todo = [n for n in dict.fromkeys(names) if (n, dtype) not in cache]
        if todo:
            encoder = self.text_encoder
            if dtype != encoder.dtype:
                encoder = encoder.copy_in(dtype)
            feats = handcrafted_features(encoder, todo, self.handcrafted_templates(), source)
            cache.update(((n, dtype), f) for n, f in zip(todo, feats))
        return torch.stack([cache[(n, dtype)] for n in names])

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
        if resolved != "val" or self.val_loader is None:  # not a validation during training
            self.record_result(accuracy)
        return accuracy

    def record_result(self, accuracy):
        """Hook after the final evaluation: write the run's results.json (accuracy, epoch,
        the checkpoint evaluated, resumes; sar_prompt.dassl_glue.results_json)."""
        checkpoint = getattr(self, "loaded_checkpoint", None)
        resumes = [] if checkpoint else read_resumes(self.output_dir)
        write_run_result(self.cfg, accuracy, self.result_epoch(), checkpoint, resumes)


class PromptTuningTrainer(TrainerCheckpoints, CLIPTrainer):
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
        self.scaler = precision.grad_scaler(self.precision, self.device)

    def autocast(self):
        """The training step's autocast (float16 under amp; sar_prompt.modeling.precision)."""
        return precision.autocast(self.precision, self.device)

    @contextmanager
    def loss_term(self, *tensors):
        """Compute a loss term from `tensors` outside autocast, in the dtype the run's
        precision gives it (`precision.loss_inputs`): `with self.loss_term(a, b) as (a, b):`."""
        with precision.outside_autocast(self.device):
            yield precision.loss_inputs(self.precision, *tensors)

    # -- training ----------------------------------------------------------------------
    def step(self, image, label, extra_text=()) -> StepOutput:
        """The method's forward pass and loss terms for one batch (CoOp: cross-entropy).
        `extra_text`: other prompt sets, [(tokens, index), ...], encoded in the same text
        pass as the classes' (SAR's novel classes); their features come back, in order, in
        `StepOutput.extra_text`. A method that overrides `step` passes it on to super()."""
        model = self.model
        image_features = model.encode_images(image)
        condition = image_features if model.conditioned else None
        text, *extra = model.text_features_of([(None, None), *extra_text], condition)
        class_text = mean_over_images(text) if model.conditioned else text
        logits = model.logits(image_features, text)
        out = StepOutput(logits, image_features, text, class_text, extra)
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
