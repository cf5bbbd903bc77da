"""CLIP's text transformer, run only as far as the batch needs.

CLIP reads each prompt's feature at its end-of-text (EOT) token and its attention is
causal, so no position after the longest EOT in a batch can change any output: we run
the transformer on the first `max(eot) + 1` positions only, which is exact and, for class
names, several times cheaper than the full 77.
"""
import torch
from torch import nn


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

    def forward(self, prompt_embeddings: torch.Tensor, eot: torch.Tensor) -> torch.Tensor:
        """Text features (N, E) of prompts given as token embeddings (N, L, D) with their
        EOT positions (N,). Not normalised."""
        length = int(eot.max()) + 1
        x = prompt_embeddings[:, :length] + self.positional_embedding[:length].type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND, as CLIP's attention expects
        mask = self.causal_mask[:length, :length].to(x.dtype)
        for block in self.resblocks:
            h = block.ln_1(x)
            x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            x = x + block.mlp(block.ln_2(x))
        x = x.permute(1, 0, 2)
        x = self.ln_final(x).type(self.dtype)
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, eot.to(x.device)] @ self.text_projection

    @torch.no_grad()
    def encode_token_ids(self, token_ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Normalised features of fixed (hand-crafted) prompts, computed without gradients."""
        from .tokens import eot_positions

        device = self.text_projection.device
        feats = []
        for chunk in token_ids.split(batch_size):
            chunk = chunk.to(device)
            feats.append(self(self.embed(chunk), eot_positions(chunk)))
        feats = torch.cat(feats)
        return feats / feats.norm(dim=-1, keepdim=True)


def handcrafted_features(text_encoder, names, template, source):
    """Normalised features of the frozen hand-crafted prompt `template` for each class name."""
    from .tokens import tokenize

    prompts = [template.format(name.replace("_", " ")) for name in names]
    return text_encoder.encode_token_ids(tokenize(prompts, source=f"{source} with {template!r}"))
