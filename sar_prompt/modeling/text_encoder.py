"""CLIP's text transformer, run block by block and only where outputs can differ.

Two exact savings, both from the attention being causal and the feature being read at the
end-of-text (EOT) token:
- truncation: no position after the longest EOT in a batch can change any output, so the
  transformer runs on the first `max(eot) + 1` positions only, not all 77;
- a shared prefix: positions that hold the same tokens in every prompt (start token,
  learned context, fixed words before the class name) have the same hidden states in every
  row, so they run once (once per image for image-conditioned prompts) and the class-name
  positions attend to that one copy.
Deep prompts (MaPLe, PromptSRC) replace the context tokens' hidden states at the input of
later blocks; shared by all rows, they stay inside the shared prefix.

Options for many classes with gradients (ImageNet-size SAR): `chunk_size` rows per pass and
`checkpoint` (activation checkpointing per chunk: the backward pass recomputes a chunk's
activations instead of keeping every chunk's), which bound peak memory by one chunk's
activations at the cost of a second forward pass of the text side.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .tokens import eot_positions, shared_prefix_length, tokenize


def normalize(x):
    return x / x.norm(dim=-1, keepdim=True)


class TextEncoder(nn.Module):
    def __init__(self, clip_model, chunk_size=0, checkpoint=False):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.resblocks = clip_model.transformer.resblocks
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype
        self.chunk_size = chunk_size  # rows per pass; 0: all rows in one pass
        self.checkpoint = checkpoint  # recompute activations in backward (with gradients only)
        n = self.positional_embedding.shape[0]
        # attend[i, j]: position i may attend to position j
        self.register_buffer("attend", torch.ones(n, n, dtype=torch.bool).tril_(),
                             persistent=False)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, D) of token ids (N, L), in CLIP's dtype."""
        return self.token_embedding(token_ids).type(self.dtype)

    def encode(self, prompts) -> torch.Tensor:
        """Features (N, E) of `protocol.TextPrompts`. Not normalised."""
        return self(prompts.embeddings, prompts.eot, prompts.deep, prompts.length,
                    prompts.shared_prefix, prompts.groups)

    def forward(self, prompt_embeddings: torch.Tensor, eot: torch.Tensor, deep_prompts=(),
                length=None, shared_prefix=0, groups=1) -> torch.Tensor:
        """Text features (N, E) of prompts given as token embeddings (N, L, D) with their
        EOT positions (N,). `deep_prompts[k]` ((n, D) or (N, n, D)) replaces positions
        1 .. 1+n at the input of block k+1. `length`, `shared_prefix`, `groups`: see
        `protocol.TextPrompts`. Not normalised."""
        if length is None:
            length = int(eot.max()) + 1
        deep = list(deep_prompts)
        if any(d is not None and (d.dim() != 2 or 1 + d.shape[0] > shared_prefix) for d in deep):
            shared_prefix = 0  # per-row deep prompts: rows differ inside the prefix
        x = prompt_embeddings[:, :length] + self.positional_embedding[:length].type(self.dtype)
        rows = x.shape[0]
        per_group = rows // groups
        step = rows
        if self.chunk_size and rows > self.chunk_size:
            step = max(per_group, self.chunk_size // per_group * per_group)
        recompute = self.checkpoint and torch.is_grad_enabled()
        out = []
        for start in range(0, rows, step):
            stop = min(start + step, rows)
            part = [d if d is None or d.dim() == 2 else d[start:stop] for d in deep]
            args = (x[start:stop], eot[start:stop], part, shared_prefix, per_group)
            if recompute:
                out.append(checkpoint(self._encode, *args, use_reentrant=False))
            else:
                out.append(self._encode(*args))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _encode(self, x, eot, deep, shared_prefix, per_group):
        p = shared_prefix
        prefix, body = (x[::per_group, :p], x[:, p:]) if p else (None, x)
        length = x.shape[1]
        for i, block in enumerate(self.resblocks):
            layer = deep[i - 1] if 1 <= i <= len(deep) else None
            if layer is not None:
                layer = layer.to(x.dtype)
                if p:
                    prefix = _replace_context(prefix, layer.expand(prefix.shape[0], -1, -1))
                else:
                    per_row = layer if layer.dim() == 3 else layer.expand(body.shape[0], -1, -1)
                    body = _replace_context(body, per_row)
            if p:
                prefix, body = self._prefixed_block(block, prefix, body, per_group, p, length)
            else:
                body = self._block(block, body)
        body = self.ln_final(body).type(self.dtype)
        rows = torch.arange(body.shape[0], device=body.device)
        return body[rows, eot.to(body.device) - p] @ self.text_projection

    @staticmethod
    def _block(block, x):
        """CLIP's residual attention block on (N, L, D), causal."""
        q, k, v = _heads(block.attn, block.ln_1(x))
        x = x + _merge(block.attn, F.scaled_dot_product_attention(q, k, v, is_causal=True))
        return x + block.mlp(block.ln_2(x))

    def _prefixed_block(self, block, prefix, body, per_group, p, length):
        """The same block on a shared prefix (G, p, D) and the rows' other positions
        (N, L-p, D): the prefix attends causally to itself, each row to its group's
        prefix and causally to its own positions."""
        attn = block.attn
        qp, kp, vp = _heads(attn, block.ln_1(prefix))
        qb, kb, vb = _heads(attn, block.ln_1(body))
        prefix_out = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
        rows = body.shape[0]
        if per_group == rows:
            kp, vp = kp.expand(rows, -1, -1, -1), vp.expand(rows, -1, -1, -1)
        else:
            kp, vp = kp.repeat_interleave(per_group, 0), vp.repeat_interleave(per_group, 0)
        body_out = F.scaled_dot_product_attention(
            qb, torch.cat([kp, kb], dim=2), torch.cat([vp, vb], dim=2),
            attn_mask=self.attend[p:length, :length])
        prefix = prefix + _merge(attn, prefix_out)
        body = body + _merge(attn, body_out)
        return (prefix + block.mlp(block.ln_2(prefix)), body + block.mlp(block.ln_2(body)))

    @torch.no_grad()
    def encode_token_ids(self, token_ids: torch.Tensor, batch_size: int = 256,
                         normalized: bool = True) -> torch.Tensor:
        """Features of fixed (hand-crafted) prompts, computed without gradients."""
        device = self.text_projection.device
        feats = []
        for chunk in token_ids.split(batch_size):
            eot = eot_positions(chunk)
            length = int(eot.max()) + 1  # token ids are on the CPU: no device read-back
            shared = shared_prefix_length(chunk, eot) if len(chunk) > 1 else 0
            chunk = chunk.to(device)
            feats.append(self(self.embed(chunk), eot.to(device), (), length, shared))
        feats = torch.cat(feats)
        return normalize(feats) if normalized else feats


def _replace_context(x, layer):
    """x (N, L, D) with positions 1 .. 1+n replaced by layer (N, n, D)."""
    return torch.cat([x[:, :1], layer, x[:, 1 + layer.shape[1]:]], dim=1)


def _heads(attn, h):
    """CLIP's attention input projection of h (N, L, D): q, k, v as (N, heads, L, D/heads)."""
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return [t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for t in (q, k, v)]


def _merge(attn, out):
    """(N, heads, L, D/heads) -> CLIP's attention output projection, (N, L, D)."""
    return F.linear(out.transpose(1, 2).flatten(2), attn.out_proj.weight, attn.out_proj.bias)


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
