"""CoOp (Zhou et al., IJCV 2022): learn the context words of the text prompt."""
from ..modeling.context_prompt import ContextPromptLearner
from .base import PromptTuningTrainer


class CoOp(PromptTuningTrainer):
    """Context Optimization: cross-entropy over the classes' prompted text features."""

    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        c = self.cfg.TRAINER.COOP
        return ContextPromptLearner(clip_model, text_encoder, classnames, n_ctx=c.N_CTX,
                                    ctx_init=c.CTX_INIT, csc=c.CSC,
                                    class_token_position=c.CLASS_TOKEN_POSITION)
