"""PromptSRC (Khattak et al., ICCV 2023): prompting with self-regulating constraints.

Independent deep vision and text prompts, trained with cross-entropy plus three terms that
keep the prompted model close to the frozen CLIP:
- L1 between the prompted class text features and the frozen ones, averaged over
  PromptSRC's template set (weight TEXT_LOSS_WEIGHT);
- L1 between the prompted image features and the frozen ones (weight IMAGE_LOSS_WEIGHT);
- KL from the frozen model's logits to the prompted ones, summed and divided by the
  number of logits (weight 1).
The frozen image features come from the same CLIP run without prompts, without a graph.
The final prompts are the Gaussian-weighted aggregate over epochs (`sar_prompt.modeling.gpa`).
Reads TRAINER.PROMPTSRC.* (as PromptSRC's repository declares them).
"""
import torch
import torch.nn.functional as F

from sar_prompt.modeling.gpa import PromptAggregation, gaussian_epoch_weights
from sar_prompt.modeling.deep_prompt import (IndependentPromptLearner, check_prompt_depth,
                                             context_init)
from sar_prompt.modeling.precision import outside_autocast
from sar_prompt.modeling.text_encoder import normalize

from .base import PromptTuningTrainer


def logit_distillation(logits, frozen_logits):
    """PromptSRC's KL(frozen || prompted) over classes, summed, per logit."""
    return F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(frozen_logits, dim=1),
                    reduction="sum", log_target=True) / logits.numel()


class PromptSRC(PromptTuningTrainer):
    config_node = "PROMPTSRC"
    template_style = "promptsrc"
    # the folder the reference code saves its checkpoints in (it saves the whole model)
    reference_model_name = "VLPromptLearner"

    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        c = self.method_cfg
        check_prompt_depth(clip_model, c.PROMPT_DEPTH_TEXT, "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT",
                           minimum=1, text=True)
        check_prompt_depth(clip_model, c.PROMPT_DEPTH_VISION,
                           "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", vision=True)
        return IndependentPromptLearner(
            clip_model, text_encoder, classnames, n_ctx_text=c.N_CTX_TEXT,
            n_ctx_vision=c.N_CTX_VISION, ctx_init=context_init(c.CTX_INIT, c.N_CTX_TEXT),
            depth_text=c.PROMPT_DEPTH_TEXT, depth_vision=c.PROMPT_DEPTH_VISION)

    def build_model(self):
        super().build_model()
        c = self.method_cfg
        self.gpa = PromptAggregation(
            gaussian_epoch_weights(self.cfg.OPTIM.MAX_EPOCH, c.GPA_MEAN, c.GPA_STD))
        self._frozen_text = None

    def frozen_text_features(self):
        """The frozen CLIP's class text features, averaged over the template set, in fp32
        whatever the run's precision (as the reference computes them): computed once, when
        training first needs them (an evaluation never does)."""
        if self._frozen_text is None:
            with outside_autocast(self.device):
                self._frozen_text = self.handcrafted_features(
                    self.dm.dataset.classnames, "dataset class names", dtype=torch.float32)
        return self._frozen_text

    def step(self, image, label, extra_text=()):
        out = super().step(image, label, extra_text)
        model, c = self.model, self.method_cfg
        frozen_text = self.frozen_text_features()
        with torch.no_grad():
            frozen_image = normalize(model.image_encoder(image))
            # the frozen logits in the image features' dtype (fp16 in an fp16 run), as the
            # reference casts its fp32 text features
            frozen_logits = model.logits(frozen_image, frozen_text.to(frozen_image.dtype))
        # the text term in fp32 (its frozen features are), the others in the features' dtype
        with self.loss_term(out.class_text_features, frozen_text) as (text, frozen):
            out.terms["scl_text"] = (c.TEXT_LOSS_WEIGHT, F.l1_loss(text, frozen))
        with self.loss_term(out.image_features, frozen_image) as (image_features, frozen):
            out.terms["scl_image"] = (c.IMAGE_LOSS_WEIGHT, F.l1_loss(image_features, frozen))
        with self.loss_term(out.logits, frozen_logits) as (logits, frozen):
            out.terms["scl_logits"] = (1.0, logit_distillation(logits, frozen))
        return out

    # -- Gaussian prompt aggregation -------------------------------------------------
    def after_epoch(self):
        """Add this epoch's prompts to the aggregate; after the last epoch the aggregate
        replaces them, before Dassl saves the final checkpoint and evaluates."""
        learner = self.model.prompt_learner
        self.gpa.add(self.epoch, learner.state_dict())
        if self.epoch + 1 == self.max_epoch:
            learner.load_state_dict(self.gpa.result(learner.state_dict()))
            print(f"[sar_prompt] GPA: the final prompts aggregate epochs "
                  f"{_ranges(self.gpa.epochs)} with Gaussian weights (mean "
                  f"{self.method_cfg.GPA_MEAN}, std {self.method_cfg.GPA_STD})")
        super().after_epoch()

    def training_state(self, epoch):
        state = super().training_state(epoch)
        state["gpa"] = self.gpa.state_dict()
        return state

    def restore_training_state(self, state, path):
        exact = super().restore_training_state(state, path)
        if state and state.get("gpa"):
            self.gpa.load_state_dict(state["gpa"], self.device)
            return exact
        print(f"[sar_prompt] {path} holds no prompt aggregate (GPA): the final prompts will "
              "aggregate only the epochs still to run, their weights renormalised.")
        return False


def _ranges(epochs):
    shown = [e + 1 for e in sorted(epochs)]
    if len(shown) > 1 and shown == list(range(shown[0], shown[-1] + 1)):
        return f"{shown[0]}-{shown[-1]}"
    return ", ".join(map(str, shown))
