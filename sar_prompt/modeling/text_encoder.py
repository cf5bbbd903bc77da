"""CLIP's text transformer, run block by block and only as far as the batch needs.

CLIP reads each prompt's feature at its end-of-text (EOT) token and its attention is
causal, so no position after the longest EOT in a batch can change any output: we run
the transformer on the first `max(eot) + 1` positions only, which is exact and, for class
names, several times cheaper than the full 77. Deep prompts (MaPLe, PromptSRC) replace the
context tokens' hidden states at the input of later blocks; they sit before the class
name, so truncation stays exact with them too.
"""
import torch
from torch import nn

from .tokens import eot_positions, tokenize


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


class TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.resblocks = clip_model.transformer.resblocks
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype
        n = self.positional_embedding.shape[0]
        mask = torch.full((n, n), float("-inf")).triu_(1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, D) of token ids (N, L), in CLIP's dtype."""
        return self.token_embedding(token_ids).type(self.dtype)

    def forward(self, prompt_embeddings: torch.Tensor, eot: torch.Tensor,
                deep_prompts=()) -> torch.Tensor:
        """Text features (N, E) of prompts given as token embeddings (N, L, D) with their
        EOT positions (N,). `deep_prompts[k]` ((n, D) or (N, n, D)) replaces positions
        1 .. 1+n at the input of block k+1. Not normalised."""
        length = int(eot.max()) + 1
        x = prompt_embeddings[:, :length] + self.positional_embedding[:length].type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND, as CLIP's attention expects
        mask = self.causal_mask[:length, :length].to(x.dtype)
        for i, block in enumerate(self.resblocks):
            if 1 <= i <= len(deep_prompts) and deep_prompts[i - 1] is not None:
                layer = deep_prompts[i - 1].to(x.dtype)
                if layer.dim() == 2:
                    layer = layer.unsqueeze(1).expand(-1, x.shape[1], -1)
                else:
                    layer = layer.permute(1, 0, 2)
                x = torch.cat([x[:1], layer, x[1 + layer.shape[0]:]], dim=0)
            h = block.ln_1(x)
            x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = x.permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, eot.to(x.device)] @ self.text_projection

    @torch.no_grad()
    def encode_token_ids(self, token_ids: torch.Tensor, batch_size: int = 256,
                         normalized: bool = True) -> torch.Tensor:
        """Features of fixed (hand-crafted) prompts, computed without gradients."""
        device = self.text_projection.device
        feats = []
        for chunk in token_ids.split(batch_size):
            chunk = chunk.to(device)
            feats.append(self(self.embed(chunk), eot_positions(chunk)))
        feats = torch.cat(feats)
        return normalize(feats) if normalized else feats


def handcrafted_features(text_encoder, names, templates, source):
    """Normalised features of frozen hand-crafted prompts for each class name. `templates`
    is one template ("a photo of a {}.") or several; the features of several are averaged
    before normalising, as PromptSRC averages its template set."""
    if isinstance(templates, str):
        templates = (templates,)
    names = [name.replace("_", " ") for name in names]
    total = 0
    for template in templates:
        prompts = [template.format(name) for name in names]
        ids = tokenize(prompts, source=f"{source} with {template!r}")
        total = total + text_encoder.encode_token_ids(ids, normalized=False)
    return normalize(total / len(templates))
