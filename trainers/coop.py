"""CoOp (Zhou et al., IJCV 2022): learn the context words of the text prompt."""
from sar_prompt.modeling.context_prompt import ContextPromptLearner

from .base import PromptTuningTrainer


class CoOp(PromptTuningTrainer):
    """Context Optimization: cross-entropy over the classes' prompted text features.
    Reads TRAINER.COOP.{N_CTX, CTX_INIT, CSC, CLASS_TOKEN_POSITION, PREC}."""

    config_node = "COOP"

    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        c = self.method_cfg
        return ContextPromptLearner(clip_model, text_encoder, classnames, n_ctx=c.N_CTX,
                                    ctx_init=c.CTX_INIT, csc=c.CSC,
                                    class_token_position=c.CLASS_TOKEN_POSITION)
