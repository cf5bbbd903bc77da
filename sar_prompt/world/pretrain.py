"""Pretrain the world's tiny CLIP (`clip.model.CLIP`, spec.ARCHITECTURE) contrastively on
rendered images of all 100 classes and their captions, from a seed.

Each step draws half a batch of classes and two pretraining images of each (images with seeds of
their own: never the dataset's), one caption per image (a template of the image's style,
photo or drawing, or of any style), and minimises CLIP's loss in both directions, each image
against the batch's captions and each caption against its images, every caption that fits
an image (its class, a template of its style or of none) a positive. Token embeddings of
words the world never writes stay zero. The same seed and settings on the same machine give
the same weights; the global random state is left as it was.
"""
import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from sar_prompt.world import render, spec

MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's, as the configs normalise
STD = (0.26862954, 0.26130258, 0.27577711)
THREADS = 1  # one CPU thread: the same weights on any machine of the same kind


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    world_seed: int = spec.WORLD_SEED
    steps: int = 2500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    images_per_class: int = 200  # the pool of pretraining images
    drawings: float = 0.3  # the share of drawings among them (the rest are photos)


def tokenize(texts):
    from sar_prompt.modeling.backbone import import_clip

    return import_clip().tokenize(list(texts))


def build(settings):
    """The initial model: CLIP's own initialisation from the seed, then every token
    embedding zero but the words of the world's captions."""
    from sar_prompt.modeling.backbone import import_clip

    clip = import_clip()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        model = clip.model.CLIP(**spec.ARCHITECTURE)
    used = torch.unique(_captions(spec.ALL_CLASSES))
    with torch.no_grad():
        keep = torch.zeros(model.token_embedding.weight.shape[0], dtype=torch.bool)
        keep[used] = True
        model.token_embedding.weight[~keep] = 0
    return model


class ShortText:
    """CLIP's text encoder on captions cut after their last end-of-text token: under the
    causal mask, positions after it never reach it, so the features are CLIP's own (tested)
    for a fraction of the work."""

    def __init__(self, model, tokens):
        self.model, self.length = model, int(tokens.argmax(dim=-1).max()) + 1
        self.tokens = tokens[..., :self.length]
        self.mask = model.build_attention_mask()[:self.length, :self.length]

    def __call__(self, tokens):
        m, n = self.model, self.length
        x = m.token_embedding(tokens) + m.positional_embedding[:n]
        x = x.permute(1, 0, 2)
        for block in m.transformer.resblocks:
            x = x + block.attn(*(block.ln_1(x),) * 3, need_weights=False, attn_mask=self.mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = m.ln_final(x.permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ m.text_projection


def normalise(images):
    """uint8 (N, 3, H, W) -> CLIP's normalised float input."""
    x = images.float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def augment(images, generator):
    """Random horizontal flips (the renderer varies position, size and rotation already)."""
    n = images.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)


def _param_groups(model, weight_decay):
    decay, rest = [], []
    for name, p in model.named_parameters():
        matrix = p.dim() >= 2 and "embedding" not in name and "conv1" not in name
        (decay if matrix else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]


def settings_record(settings):
    """The settings as the weights file records them."""
    return {**asdict(settings), "threads": THREADS}


def pretrain(settings=Settings(), progress=None, log=None):
    """The pretrained model's state dict (fp16, as OpenAI ships CLIP) and a summary of the
    run. `progress(step, steps)` is called after each step; `log(line)` now and then.
    Runs on THREADS CPU threads (the result depends on the number of threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _pretrain(settings, progress, log)
    finally:
        torch.set_num_threads(threads)


def _captions(classes):
    """Every caption's tokens, (templates, classes, length)."""
    texts = [t.format(c) for t, _ in spec.CAPTIONS for c in classes]
    return tokenize(texts).view(len(spec.CAPTIONS), len(classes), -1)


STYLES = ("", "photo", "drawing")  # what a caption may say of an image; "": nothing


def _describe(looks, generator):
    """A caption template (index) for each image: one of its style or of any style."""
    out = []
    for look in looks:
        fits = [i for i, (_, s) in enumerate(spec.CAPTIONS) if s in ("", look.style)]
        out.append(fits[int(torch.randint(0, len(fits), (1,), generator=generator))])
    return out


def _fits(looks, labels, described):
    """(B, B) bool: caption j describes image i: the same class, and a template that says
    nothing of the style or says image i's."""
    image_style = torch.tensor([STYLES.index(look.style) for look in looks])
    said = torch.tensor([STYLES.index(spec.CAPTIONS[t][1]) for t in described])
    return ((labels.view(-1, 1) == labels.view(1, -1))
            & ((said == 0).view(1, -1) | (said.view(1, -1) == image_style.view(-1, 1))))


def _pretrain(settings, progress, log):
    started, cpu_started = time.perf_counter(), time.process_time()
    model = build(settings)
    classes = spec.ALL_CLASSES
    per_class = settings.images_per_class
    pool, labels, looks = render.render_array(classes, settings.world_seed, "pretrain",
                                              per_class, settings.drawings)
    pool, labels = torch.from_numpy(pool), torch.from_numpy(labels)
    captions = _captions(classes)
    text = ShortText(model, captions)
    gen = torch.Generator().manual_seed(settings.seed)
    optim = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr,
                              betas=(0.9, 0.98), eps=1e-6)

    def lr_at(step):
        if step < settings.warmup:
            return settings.lr * (step + 1) / settings.warmup
        done = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return settings.lr * 0.5 * (1 + math.cos(math.pi * done))

    model.train()
    for step in range(settings.steps):
        for group in optim.param_groups:
            group["lr"] = lr_at(step)
        # half the batch's classes, two images of each: every caption meets another image
        # of its class, which it may or may not describe
        chosen = torch.randperm(len(classes), generator=gen)[:settings.batch_size // 2]
        index = (chosen.repeat_interleave(2) * per_class
                 + torch.randint(0, per_class, (2 * len(chosen),), generator=gen))
        batch_looks = [looks[i] for i in index.tolist()]
        label = labels[index]
        described = _describe(batch_looks, gen)
        tokens = text.tokens[torch.tensor(described), label]
        images = normalise(augment(pool[index], gen))
        image_features = F.normalize(model.encode_image(images), dim=-1)
        text_features = F.normalize(text(tokens), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.t()
        fit = _fits(batch_looks, label, described)
        # CLIP's two directions, every caption that fits an image a positive of it
        image_loss = -(torch.logsumexp(logits.masked_fill(~fit, -math.inf), 1)
                       - torch.logsumexp(logits, 1)).mean()
        text_loss = -(torch.logsumexp(logits.t().masked_fill(~fit.t(), -math.inf), 1)
                      - torch.logsumexp(logits.t(), 1)).mean()
        loss = (image_loss + text_loss) / 2
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if log and (step + 1) % 100 == 0:
            log(f"step {step + 1}/{settings.steps}: loss {loss.item():.4f}, "
                f"logit scale {model.logit_scale.exp().item():.1f}")
        if progress:
            progress(step + 1, settings.steps)
    state = {k: v.detach().half() if v.is_floating_point() else v.detach()
             for k, v in model.state_dict().items()}
    summary = {"settings": settings_record(settings), "final_loss": round(loss.item(), 6),
               "wall_seconds": round(time.perf_counter() - started, 1),
               "cpu_seconds": round(time.process_time() - cpu_started, 1)}
    return state, summary
