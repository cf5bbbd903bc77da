"""The same computations done the way the CoOp family's reference code does them, on a
trainer's own prompt learner, optimizer and loss terms, for side-by-side timing.

What the references recompute (CoOp, CoCoOp, KgCoOp, MaPLe and PromptSRC repositories):
- the text transformer runs on all 77 positions of every prompt, each training step and
  each evaluation batch (class text features are never kept across batches);
- CoCoOp loops over the images: each image's prompts for all classes are one text pass;
- KgCoOp's hand-crafted features and PromptSRC's frozen text features are computed once;
  PromptSRC runs the frozen image encoder on every training batch.
The image side is the trainer's own (`model.encode_images`, with MaPLe's and PromptSRC's
image prompts). Only `TextPrompts.embeddings`, `.eot` and `.deep` are read.
"""
import torch
import torch.nn.functional as F

from sar_prompt.modeling.text_encoder import normalize


def full_text_features(clip_model, prompts):
    """Normalised text features (rows, E) of `prompts` (a TextPrompts), as CLIP computes
    them: padded to the full context, CLIP's own blocks with their causal mask over all
    positions, deep prompts replacing the context tokens at the input of block k+1."""
    emb, eot, deep = prompts.embeddings, prompts.eot, tuple(prompts.deep)
    dtype = clip_model.dtype
    context = clip_model.positional_embedding.shape[0]
    rows, length, width = emb.shape
    pad = emb.new_zeros(rows, context - length, width)
    x = torch.cat([emb, pad], dim=1) + clip_model.positional_embedding.type(dtype)
    x = x.permute(1, 0, 2)  # NLD -> LND
    for i, block in enumerate(clip_model.transformer.resblocks):
        if 1 <= i <= len(deep) and deep[i - 1] is not None:
            layer = deep[i - 1].to(x.dtype)
            layer = (layer.unsqueeze(1).expand(-1, rows, -1) if layer.dim() == 2
                     else layer.permute(1, 0, 2))
            x = torch.cat([x[:1], layer, x[1 + layer.shape[0]:]], dim=0)
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2)).type(dtype)
    features = x[torch.arange(rows, device=x.device), eot.to(x.device)] @ \
        clip_model.text_projection
    return normalize(features)


def _logits(trainer, image_features):
    """(logits (B, C), class text features (C, E) or None for a conditioned learner)."""
    model = trainer.model
    learner, clip_model = model.prompt_learner, trainer.clip_model
    if not model.conditioned:
        text = full_text_features(clip_model, learner())
        return model.logits(image_features, text), text
    rows = []
    for feature in image_features.split(1):  # CoCoOp: one image, all its class prompts
        text = full_text_features(clip_model, learner(condition=feature))
        rows.append(model.logits(feature, text))
    return torch.cat(rows), None


def reference_loss(trainer, image, label):
    """(loss, logits) of one training step of the trainer's method, as its reference
    computes them."""
    from sar_prompt.trainers import KgCoOp, PromptSRC
    from sar_prompt.trainers.promptsrc import logit_distillation

    model = trainer.model
    image_features = model.encode_images(image)
    logits, text = _logits(trainer, image_features)
    loss = F.cross_entropy(logits, label)
    if isinstance(trainer, KgCoOp):
        cos = (text * trainer.handcrafted.to(text.dtype)).sum(dim=-1)
        loss = loss + trainer.method_cfg.W * (1.0 - cos.mean())
    elif isinstance(trainer, PromptSRC):
        c = trainer.method_cfg
        frozen_text = trainer.frozen_text_features()
        with torch.no_grad():
            frozen_image = normalize(model.image_encoder(image))
            frozen_logits = model.logits(frozen_image, frozen_text.to(frozen_image.dtype))
        loss = (loss + c.TEXT_LOSS_WEIGHT * F.l1_loss(text, frozen_text.to(text.dtype))
                + c.IMAGE_LOSS_WEIGHT * F.l1_loss(image_features, frozen_image)
                + logit_distillation(logits, frozen_logits))
    return loss, logits


def reference_step(trainer, batch):
    """One training step the reference way, updated through the trainer's optimizer."""
    from dassl.metrics import compute_accuracy

    image, label = trainer.parse_batch_train(batch)
    with trainer.autocast():
        loss, logits = reference_loss(trainer, image, label)
    if trainer.scaler is not None:
        trainer.optim.zero_grad()
        trainer.scaler.scale(loss).backward()
        trainer.scaler.step(trainer.optim)
        trainer.scaler.update()
    else:
        trainer.model_backward_and_update(loss)
    return {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}


@torch.no_grad()
def reference_inference(trainer, images):
    """Logits of one evaluation batch, the text re-encoded for it (per image for CoCoOp)."""
    return _logits(trainer, trainer.model.encode_images(images))[0]
