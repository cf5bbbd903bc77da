"""MaPLe (Khattak et al., CVPR 2023): multi-modal prompt learning. Text context at the input
and deep text prompts in the first PROMPT_DEPTH layers, each coupled to a vision prompt by a
learned linear projection; cross-entropy. Reads TRAINER.MAPLE.{N_CTX, CTX_INIT, PREC,
PROMPT_DEPTH} (as MaPLe's repository declares them)."""
from sar_prompt.modeling.deep_prompt import MaPLePromptLearner, check_prompt_depth, context_init

from .base import PromptTuningTrainer


class MaPLe(PromptTuningTrainer):
    config_node = "MAPLE"
    # the folder and key prefix of the reference code's checkpoints (it saves the whole model)
    reference_model_name = "MultiModalPromptLearner"

    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        c = self.method_cfg
        check_prompt_depth(clip_model, c.PROMPT_DEPTH, "TRAINER.MAPLE.PROMPT_DEPTH", minimum=1,
                           text=True, vision=True)
        return MaPLePromptLearner(clip_model, text_encoder, classnames, n_ctx=c.N_CTX,
                                  ctx_init=context_init(c.CTX_INIT, c.N_CTX),
                                  depth=c.PROMPT_DEPTH)
