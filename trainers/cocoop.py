"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context plus a per-image bias from a meta-net, so
each image gets its own prompts for every class; cross-entropy over those per-image logits.
Reads TRAINER.COCOOP.{N_CTX, CTX_INIT, PREC} (as CoOp's repository declares them)."""
from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner

from .base import PromptTuningTrainer


class CoCoOp(PromptTuningTrainer):
    """Conditional Context Optimization. Training and evaluation encode every class's prompt
    once per image; evaluation batches those text passes over the images."""

    config_node = "COCOOP"

    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        c = self.method_cfg
        return ConditionalPromptLearner(clip_model, text_encoder, classnames, n_ctx=c.N_CTX,
                                        ctx_init=c.CTX_INIT)
