"""CoOp's prompt: learnable context vectors around each class name's tokens,
`[SOS] ctx_1 .. ctx_M <name tokens> . [EOS]` (or the name in front of / amid the context)."""
from collections import defaultdict

import torch
from torch import nn

from sar_prompt.errors import ConfigError
from sar_prompt.modeling.bpe import class_prompt_text
from sar_prompt.modeling.learner_interface import TextPrompts
from sar_prompt.modeling.tokens import bpe, eot_positions, shared_prefix_length, tokenize
from sar_prompt.modeling.transfer import to_device

DEFAULT_CTX_INIT = "a photo of a"  # what KgCoOp's CTX_INIT=True means
CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


class ClassTokens(nn.Module):
    """The frozen token embeddings of a set of class names in the context prompt, truncated
    after the longest end-of-text token. Rebuilt for each class set, never saved (buffers are
    non-persistent), so a checkpoint trained on base classes loads for new ones."""

    def __init__(self, prefix, suffix, eot, name_lens, shared_prefix=0):
        super().__init__()
        self.register_buffer("prefix", prefix, persistent=False)  # (N, 1, D): SOS
        self.register_buffer("suffix", suffix, persistent=False)  # (N, L-1-M, D): name . EOS
        self.register_buffer("eot", eot, persistent=False)  # (N,)
        # Python copies, so building prompts never reads a tensor back from the device
        self.eot_list = eot.tolist()
        self.name_lens = name_lens  # BPE tokens of each name
        self.shared_prefix = shared_prefix  # leading positions equal in every row

    def eots(self, index=None):
        """The EOT positions of the rows `index` (all rows without one) as Python ints, or
        None when `index` is not on the CPU (reading it would wait for the device)."""
        if index is None:
            return self.eot_list
        if index.device.type != "cpu":
            return None
        return [self.eot_list[i] for i in index.tolist()]

    def __len__(self):
        return self.prefix.shape[0]


class ContextPromptLearner(nn.Module):
    """CoOp's prompt learner (see `learner_interface.PromptLearner`): a context shared by all classes,
    or one per class (`csc`), initialised from words or at random. `init_tokens`: with
    `ctx_init`, only its first so many tokens become the context and the other words stay
    fixed text before the class name (MaPLe, PromptSRC); default all (CoOp)."""

    conditioned = False

    def __init__(self, clip_model, text_encoder, classnames, n_ctx=16, ctx_init="", csc=False,
                 class_token_position="end", init_tokens=None):
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(f"class_token_position is {class_token_position!r}; use one of "
                             f"{', '.join(CLASS_TOKEN_POSITIONS)}.")
        if ctx_init is True:
            ctx_init = DEFAULT_CTX_INIT
        ctx_init = (ctx_init or "").replace("_", " ").strip()
        self.text_encoder = [text_encoder]  # a list keeps it out of this module's parameters
        self.class_token_position = class_token_position
        self.csc = bool(csc)
        dtype = clip_model.dtype
        width = clip_model.ln_final.weight.shape[0]

        if ctx_init:
            # One context vector per BPE token of the words (CoOp counts words, which is the
            # same for "a photo of a" but not for words BPE splits).
            n_words = len(bpe().encode(ctx_init))
            n_ctx = n_words if init_tokens is None else init_tokens
            if not 1 <= n_ctx <= n_words:
                raise ConfigError(f"CTX_INIT {ctx_init!r} has {n_words} tokens, too few to "
                                  f"initialise {n_ctx} context tokens: give at least {n_ctx} "
                                  "words, fewer context tokens, or CTX_INIT \"\" (random).")
            with torch.no_grad():
                ids = tokenize([ctx_init], source=f"CTX_INIT {ctx_init!r}", error=ConfigError)
                ctx = text_encoder.embed(ids)[0, 1:1 + n_ctx].clone()
            if self.csc:  # as in CoOp, an initialised context is shared by all classes
                print("[sar_prompt] CTX_INIT is set, so the context is shared (CSC ignored, as in CoOp)")
                self.csc = False
            self.prompt_prefix = ctx_init
        else:
            shape = (len(classnames), n_ctx, width) if self.csc else (n_ctx, width)
            ctx = torch.empty(*shape, dtype=dtype)
            nn.init.normal_(ctx, std=0.02)
            self.prompt_prefix = " ".join(["X"] * n_ctx)
        print(f'[sar_prompt] initial context: "{self.prompt_prefix}" ({n_ctx} tokens'
              f'{", class-specific" if self.csc else ""})')
        self.n_ctx = n_ctx
        self.ctx = nn.Parameter(ctx)
        self.classes = self.class_tokens(classnames, source="dataset class names")

    def prompt_texts(self, names):
        return [f"{self.prompt_prefix} {class_prompt_text(n)}." for n in names]

    @torch.no_grad()
    def class_tokens(self, names, source="class names") -> ClassTokens:
        """Frozen token embeddings of `names` in this prompt (for the dataset's classes, or
        for other names such as SAR's novel classes)."""
        encoder = self.text_encoder[0]
        ids = tokenize(self.prompt_texts(names), source=source)
        eot = eot_positions(ids)
        ids = ids[:, :int(eot.max()) + 1]
        emb = encoder.embed(ids.to(encoder.token_embedding.weight.device))
        name_lens = [len(bpe().encode(class_prompt_text(n))) for n in names]
        tokens = ClassTokens(emb[:, :1], emb[:, 1 + self.n_ctx:], eot, name_lens,
                             self.shared_positions(ids, eot))
        return tokens.to(emb.device)

    def shared_positions(self, ids, eot):
        """Leading positions the same in every prompt of `ids` and in any other set of names
        this learner prompts: the start token, the context and fixed words before the name.
        Only with the name at the end (elsewhere the name comes first); 0 if none."""
        if self.class_token_position != "end":
            return 0
        template = 1 + len(bpe().encode(self.prompt_prefix))  # not into the names
        shared = min(shared_prefix_length(ids, eot), template)
        return shared if shared > self.n_ctx else 0

    def image_prompts(self):
        return None  # the image path has nothing learnable

    def rows(self, tokens=None, index=None):
        """(prefix, suffix, eot, name_lens, ctx) of `tokens` (default: the dataset's
        classes), only the rows `index` if given (best on the CPU: see
        `ClassTokens.eots`); ctx is (n_ctx, D) or, class-specific, (rows, n_ctx, D)."""
        if tokens is None:
            tokens = self.classes
        elif self.csc:
            raise ConfigError("TRAINER.COOP.CSC is True: class-specific contexts exist only for "
                              "the dataset's classes, so other class names (SAR's novel classes) "
                              "cannot be prompted. Use a shared context (CSC False).")
        prefix, suffix, eot = tokens.prefix, tokens.suffix, tokens.eot
        name_lens = tokens.name_lens
        ctx = self.ctx
        if index is not None:
            if self.class_token_position != "end":  # only front/middle need the lengths
                name_lens = [name_lens[i] for i in index.tolist()]
            index = to_device(index, prefix.device)
            prefix, suffix, eot = prefix[index], suffix[index], eot[index]
            if ctx.dim() == 3:
                ctx = ctx[index]
        return prefix, suffix, eot, name_lens, ctx

    def as_text_prompts(self, embeddings, eot, tokens, index, groups=1):
        """`TextPrompts` with what is known of `tokens` without reading the device."""
        tokens = self.classes if tokens is None else tokens
        shared = tokens.shared_prefix if self.ctx.dim() == 2 else 0  # CSC: rows differ
        eots = tokens.eots(index)
        length = max(eots or tokens.eot_list) + 1
        return TextPrompts(embeddings, eot, length=length, shared_prefix=shared, groups=groups,
                           eot_list=None if eots is None else eots * groups)

    def forward(self, tokens: ClassTokens = None, index: torch.Tensor = None,
                condition=None) -> TextPrompts:
        """Prompts for `tokens` (default: the dataset's classes), only the rows `index` if
        given. CoOp's context does not depend on the image: `condition` must be None."""
        if condition is not None:
            raise ValueError("CoOp's context is not image-conditioned; condition must be None")
        prefix, suffix, eot, name_lens, ctx = self.rows(tokens, index)
        n = prefix.shape[0]
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(n, -1, -1)

        if self.class_token_position == "end":
            return self.as_text_prompts(torch.cat([prefix, ctx, suffix], dim=1), eot, tokens, index)
        # front / middle: the name moves into the context. Rows with equal name length are
        # sliced together, so the cost grows with distinct lengths, not with classes.
        groups = defaultdict(list)
        for row, length in enumerate(name_lens):
            groups[length].append(row)
        half = self.n_ctx // 2
        out = torch.empty(n, prefix.shape[1] + ctx.shape[1] + suffix.shape[1], prefix.shape[2],
                          dtype=ctx.dtype, device=prefix.device)
        for length, rows in groups.items():
            rows = torch.tensor(rows, device=prefix.device)
            name, rest = suffix[rows, :length], suffix[rows, length:]
            c = ctx[rows]
            if self.class_token_position == "front":
                parts = [prefix[rows], name, c, rest]
            else:  # middle
                parts = [prefix[rows], c[:, :half], name, c[:, half:], rest]
            out[rows] = torch.cat(parts, dim=1)
        return self.as_text_prompts(out, eot, tokens, index)
