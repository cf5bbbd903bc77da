"""CLIP's text transformer, run block by block and only where outputs can differ.

Four exact savings, all from the attention being causal and the feature being read at the
end-of-text (EOT) token:
- truncation: no position after a row's EOT can change its feature, so the transformer
  runs on the first `max(eot) + 1` positions only, not all 77;
- packing: with the EOTs known on the host, the position-wise layers (most of the work)
  run on each row's own positions only, not on the padding up to the longest EOT;
- a shared prefix: positions that hold the same tokens in every prompt (start token,
  learned context, fixed words before the class name) have the same hidden states in every
  row, so they run once (once per image for image-conditioned prompts) and the class-name
  positions attend to that one copy.
- the last block at the EOTs: its output is read at each row's EOT only, so every other
  position needs only its keys and values there, not its query, attention or MLP.
Deep prompts (MaPLe, PromptSRC) replace the context tokens' hidden states at the input of
later blocks; shared by all rows, they stay inside the shared prefix.

Options for many classes with gradients (ImageNet-size SAR): `chunk_size` rows per pass and
`checkpoint` (activation checkpointing per chunk: the backward pass recomputes a chunk's
activations instead of keeping every chunk's), which bound peak memory by one chunk's
activations at the cost of a second forward pass of the text side.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from sar_prompt.modeling.tokens import eot_positions, shared_prefix_length, tokenize
from sar_prompt.modeling.transfer import to_device


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

    def copy_in(self, dtype):
        """A copy of this encoder (CLIP's text side) with its weights in `dtype`."""
        encoder = copy.deepcopy(self).to(dtype)
        encoder.dtype = dtype
        return encoder

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (N, L, D) of token ids (N, L), in CLIP's dtype."""
        return self.token_embedding(token_ids).type(self.dtype)

    def encode(self, prompts) -> torch.Tensor:
        """Features (N, E) of `learner_interface.TextPrompts`. Not normalised."""
        return self(prompts.embeddings, prompts.eot, prompts.deep, prompts.length,
                    prompts.shared_prefix, prompts.groups, prompts.eot_list)

    def forward(self, prompt_embeddings: torch.Tensor, eot: torch.Tensor, deep_prompts=(),
                length=None, shared_prefix=0, groups=1, eot_list=None) -> torch.Tensor:
        """Text features (N, E) of prompts given as token embeddings (N, L, D) with their
        EOT positions (N,). `deep_prompts[k]` ((n, D) or (N, n, D)) replaces positions
        1 .. 1+n at the input of block k+1. `length`, `shared_prefix`, `groups`,
        `eot_list`: see `learner_interface.TextPrompts`. Not normalised."""
        if length is None:
            length = int(eot.max()) + 1
        deep = list(deep_prompts)
        if any(d is not None and (d.dim() != 2 or 1 + d.shape[0] > shared_prefix) for d in deep):
            shared_prefix = 0  # per-row deep prompts: rows differ inside the prefix
        x = prompt_embeddings[:, :length] + self.positional_embedding[:length].type(self.dtype)
        recompute = self.checkpoint and torch.is_grad_enabled()
        out = []
        for start, stop, per_group in _chunks(x.shape[0], groups, self.chunk_size):
            part = [d if d is None or d.dim() == 2 else d[start:stop] for d in deep]
            layout = _Layout(eot[start:stop], None if eot_list is None else eot_list[start:stop],
                             shared_prefix, length, per_group)
            args = (x[start:stop], layout, part)
            if recompute:
                out.append(checkpoint(self._encode, *args, use_reentrant=False))
            else:
                out.append(self._encode(*args))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _encode(self, x, layout, deep):
        """The transformer on the packed tokens of one chunk of rows (see `_Layout`)."""
        p = layout.prefix
        prefix = x[::layout.per_group, :p] if p else None
        tokens = layout.pack(x[:, p:])
        for i, block in enumerate(self.resblocks):
            layer = deep[i - 1] if 1 <= i <= len(deep) else None
            if layer is not None:
                layer = layer.to(x.dtype)
                if p:
                    prefix = _replace_context(prefix, layer.expand(prefix.shape[0], -1, -1))
                else:
                    per_row = layer if layer.dim() == 3 else layer.expand(x.shape[0], -1, -1)
                    tokens = layout.pack(_replace_context(layout.unpack(tokens), per_row))
            if i == len(self.resblocks) - 1:
                ends = self._last_block(block, prefix, tokens, layout)
            else:
                prefix, tokens = self._block(block, prefix, tokens, layout)
        return self.ln_final(ends).type(self.dtype) @ self.text_projection

    def _attend(self, device):
        """The attention pattern on `device`, moved once if the encoder was not (it shares
        CLIP's modules, which may have been moved without it)."""
        if self.attend.device != device:
            self.attend = self.attend.to(device)
        return self.attend

    def _block(self, block, prefix, tokens, layout):
        """CLIP's residual attention block. Position-wise layers run on the packed tokens;
        attention unpacks them: each row attends causally to its own positions and, with a
        shared prefix (G, p, D), to its group's prefix, which attends causally to itself."""
        attn = block.attn
        q, k, v = _heads(attn, layout.unpack(_project_in(attn, block.ln_1(tokens))))
        if prefix is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            qp, kp, vp = _heads(attn, _project_in(attn, block.ln_1(prefix)))
            prefix_out = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
            prefix = prefix + _merge(attn, prefix_out)
            prefix = prefix + block.mlp(block.ln_2(prefix))
            k, v = layout.with_prefix(kp, k), layout.with_prefix(vp, v)
            out = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=self._attend(q.device)[layout.prefix:layout.length, :layout.length])
        tokens = tokens + _project_out(attn, layout.pack(out.transpose(1, 2).flatten(2)))
        return prefix, tokens + block.mlp(block.ln_2(tokens))

    def _last_block(self, block, prefix, tokens, layout):
        """The last residual block, where only each row's EOT output is read: keys and
        values everywhere, but the query, attention and MLP at the EOTs only (most of a
        block's work saved at every other position). Returns (rows, D)."""
        attn = block.attn
        normed = block.ln_1(tokens)
        k, v = _heads(attn, layout.unpack(_project_in(attn, normed, 1)))
        if prefix is not None:
            kp, vp = _heads(attn, _project_in(attn, block.ln_1(prefix), 1))
            k, v = layout.with_prefix(kp, k), layout.with_prefix(vp, v)
        x = tokens[layout.ends]
        (q,) = _heads(attn, _project_in(attn, normed[layout.ends], 0, 1)[:, None])
        # the EOT at (absolute) position e attends to positions 0 .. e of its row
        sees = torch.arange(layout.length, device=x.device) <= layout.eot[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sees[:, None, None, :])
        x = x + _project_out(attn, out.flatten(1))
        return x + block.mlp(block.ln_2(x))

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
            feats.append(self(self.embed(chunk), eot.to(device), (), length, shared,
                              eot_list=eot.tolist()))
        feats = torch.cat(feats)
        return normalize(feats) if normalized else feats


def _chunks(rows, groups, size):
    """(start, stop, rows per group) of each pass over `rows` rows in `groups` equal groups,
    at most `size` rows a pass (0: one pass): whole groups together, or a group too large
    cut into pieces (each piece then has its own copy of the group's shared prefix)."""
    per_group = rows // groups
    if not size or rows <= size:
        return [(0, rows, per_group)]
    if per_group <= size:
        step = size // per_group * per_group
        return [(s, min(s + step, rows), per_group) for s in range(0, rows, step)]
    return [(s, min(s + size, g + per_group), min(s + size, g + per_group) - s)
            for g in range(0, rows, per_group) for s in range(g, g + per_group, size)]


class _Layout:
    """Where each row's tokens sit when only the needed ones are kept ("packed"): rows run
    from the shared prefix to their own EOT, not to the longest EOT of the batch, so the
    position-wise layers (most of the work) skip the padding. With the EOTs as Python
    ints (`eot_list`) the layout is built on the host without reading the device;
    without them every position up to `length` is kept."""

    def __init__(self, eot, eot_list, prefix, length, per_group):
        self.prefix, self.length, self.per_group = prefix, length, per_group
        self.rows, self.width = eot.shape[0], length - prefix
        device = eot.device
        self.eot = eot  # absolute positions, on the device
        if eot_list is None:
            self.slots = None  # every position kept
            self.ends = (torch.arange(self.rows, device=device) * self.width
                         + eot.to(device) - prefix)
            return
        lengths = torch.tensor(eot_list) + 1 - prefix
        keep = torch.arange(self.width) < lengths[:, None]
        self.slots = to_device(keep.flatten().nonzero().squeeze(1), device)
        self.ends = to_device(lengths.cumsum(0) - 1, device)

    def pack(self, x):
        """(rows, width, C) -> (kept tokens, C)."""
        x = x.reshape(self.rows * self.width, x.shape[-1])
        return x if self.slots is None else x[self.slots]

    def with_prefix(self, of_prefix, of_rows):
        """Keys or values of the shared prefix (groups, heads, p, d) put before each row's
        own (rows, heads, width, d): (rows, heads, p + width, d)."""
        if self.per_group == self.rows:
            of_prefix = of_prefix.expand(self.rows, -1, -1, -1)
        else:
            of_prefix = of_prefix.repeat_interleave(self.per_group, 0)
        return torch.cat([of_prefix, of_rows], dim=2)

    def unpack(self, tokens):
        """(kept tokens, C) -> (rows, width, C), zeros where nothing was kept (positions
        after a row's EOT, which causal attention never lets reach it)."""
        if self.slots is not None:
            tokens = tokens.new_zeros(self.rows * self.width, tokens.shape[-1]).index_copy(
                0, self.slots, tokens)
        return tokens.view(self.rows, self.width, -1)


def _replace_context(x, layer):
    """x (N, L, D) with positions 1 .. 1+n replaced by layer (N, n, D)."""
    return torch.cat([x[:, :1], layer, x[:, 1 + layer.shape[1]:]], dim=1)


def _project_in(attn, x, first=0, stop=3):
    """CLIP's attention input projection, only its parts first .. stop-1 of (q, k, v)."""
    d = x.shape[-1]
    return F.linear(x, attn.in_proj_weight[first * d:stop * d],
                    attn.in_proj_bias[first * d:stop * d])


def _heads(attn, projected):
    """An input projection (N, L, parts * D) -> one (N, heads, L, D/heads) per part."""
    parts = projected.shape[-1] // attn.embed_dim
    return [t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
            for t in projected.chunk(parts, dim=-1)]


def _merge(attn, out):
    """(N, heads, L, D/heads) -> CLIP's attention output projection, (N, L, D)."""
    return _project_out(attn, out.transpose(1, 2).flatten(2))


def _project_out(attn, x):
    return F.linear(x, attn.out_proj.weight, attn.out_proj.bias)


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
