"""PromptedCLIP's logits (CLIP's scaled cosine similarities, per image for an
image-conditioned learner), the class features frozen for an evaluation, and zero-shot
CLIP's fixed-feature classifier."""
import torch

from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner
from sar_prompt.modeling.context_prompt import ContextPromptLearner
from sar_prompt.modeling.image_encoder import ImageEncoder
from sar_prompt.modeling.prompted_clip import HandcraftedCLIP, PromptedCLIP
from sar_prompt.modeling.text_encoder import TextEncoder, normalize
from test_encoders import clip_model, images  # noqa: F401  (fixtures)

NAMES = ["car_side", "grand piano", "ant"]


def clip_logits(clip_model, images, text_features):
    """CLIP's own: the scaled cosine similarity of each image to each class."""
    image = normalize(clip_model.encode_image(images))
    return clip_model.logit_scale.exp() * (image[:, None, :] * text_features).sum(-1)


def test_logits_are_clips_scaled_cosine_similarities(clip_model, images):
    encoder = TextEncoder(clip_model)
    model = PromptedCLIP(clip_model, encoder,
                         ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a"))
    with torch.no_grad():
        text = model.text_features()
        torch.testing.assert_close(model(images), clip_logits(clip_model, images, text))


def test_an_image_conditioned_learner_classifies_each_image_with_its_own_prompts(clip_model,
                                                                                 images):
    encoder = TextEncoder(clip_model)
    torch.manual_seed(2)
    model = PromptedCLIP(clip_model, encoder,
                         ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=2))
    with torch.no_grad():
        per_image = torch.stack([model.text_features(condition=model.encode_images(image[None]))[0]
                                 for image in images])  # (B, C, E), one image at a time
        expected = clip_logits(clip_model, images, per_image)
        torch.testing.assert_close(model(images), expected)
        with model.frozen_text_features():  # nothing to freeze: they depend on the image
            torch.testing.assert_close(model(images), expected)


def test_frozen_class_features_last_one_evaluation(clip_model, images):
    encoder = TextEncoder(clip_model)
    learner = ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a")
    model = PromptedCLIP(clip_model, encoder, learner)
    with torch.no_grad():
        with model.frozen_text_features():
            frozen = model.text_features()
        learner.ctx.add_(0.5)  # a training step after the evaluation
        after = model.text_features()
    assert isinstance(after, torch.Tensor) and not torch.allclose(after, frozen)


def test_zero_shot_clip_classifies_with_its_fixed_class_features(clip_model, images):
    text = normalize(torch.randn(3, 32, generator=torch.Generator().manual_seed(3)))
    model = HandcraftedCLIP(ImageEncoder(clip_model.visual), clip_model.logit_scale, text)
    with torch.no_grad():
        torch.testing.assert_close(model(images), clip_logits(clip_model, images, text))
    assert torch.equal(model.text_features, text)
    assert "text_features" not in model.state_dict()  # rebuilt for each run's classes
