"""CLIP pieces shared by every trainer: loading (backbone), the block-by-block text and image
encoders, prompt tokens, what a prompt learner offers (learner_interface), CoOp's and CoCoOp's prompt
learners, and the prompted model."""
