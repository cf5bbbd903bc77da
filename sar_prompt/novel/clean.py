"""Turning a raw list of names (from GPT-4o, a file, CLIP's vocabulary or WordNet) into a
novel-class list SAR can use, and saying what was dropped and why.

Every source goes through `clean`, so every shipped or generated file obeys the same rules:
names are stripped and normalised; non-printable, empty, over-long, duplicate
(case/punctuation-insensitive, see `normalized`) and base-class names are dropped; names that
do not fit CLIP's 77 tokens in the dataset's hand-crafted template or in the learnable prompt
with up to MAX_CONTEXT_TOKENS context tokens are dropped; names equal to a held-out new
class are counted and kept (the paper's protocol) or dropped with `exclude_new`.
"""
import re
import unicodedata
from dataclasses import dataclass, field

from . import MAX_NAME_CHARS, normalized

MAX_CONTEXT_TOKENS = 16  # the longest learnable context the CoOp family uses (CoOp's default)

# Why a name was dropped, in the order the checks run, with the words reports use.
REASONS = {
    "not_text": "not a string",
    "non_printable": "non-printable characters",
    "empty": "empty (no letter or digit)",
    "too_many_chars": f"over {MAX_NAME_CHARS} characters",
    "duplicate": "duplicates (case and punctuation ignored)",
    "base": "base (training) classes",
    "new": "held-out new classes (--exclude-new)",
    "too_many_tokens": "too long for CLIP's 77 tokens",
}

_LIST_MARKER = re.compile(r"^(?:[-*\u2022]|\d{1,4}[.)])\s+")  # "- x", "* x", "12. x", "3) x"
_QUOTES = ("\"\"", "''", "\u201c\u201d", "\u2018\u2019", "``")


@dataclass
class Cleaned:
    names: list
    received: int
    dropped: dict = field(default_factory=dict)  # reason -> [name as received]
    new_overlap: list = field(default_factory=list)
    exclude_new: bool = False

    @property
    def dropped_count(self):
        return sum(len(v) for v in self.dropped.values())

    def summary(self):
        """'180 kept of 212 (32 dropped: 20 base (training) classes, ...)' for progress lines."""
        parts = [f"{len(v)} {REASONS[k]}" for k, v in self.dropped.items() if v]
        text = f"{len(self.names)} kept of {self.received}"
        if parts:
            text += f" ({self.dropped_count} dropped: {', '.join(parts)})"
        policy = "excluded" if self.exclude_new else "kept"
        text += f"; {len(self.new_overlap)} equal held-out new classes ({policy})"
        return text

    def audit(self, class_list):
        return {
            "class_list": class_list,
            "received": self.received,
            "kept": len(self.names),
            "dropped": {k: list(v) for k, v in self.dropped.items() if v},
            "new_overlap": {"policy": "excluded" if self.exclude_new else "kept",
                            "count": len(self.new_overlap), "names": list(self.new_overlap)},
        }


def tidy(raw: str) -> str:
    """Strip a name: outer space, list markers, matching quotes, trailing punctuation that
    would double the prompt's full stop, underscores (prompts read them as spaces), runs of
    spaces; Unicode NFC. Inner characters are left alone."""
    name = unicodedata.normalize("NFC", raw).strip()
    name = _LIST_MARKER.sub("", name)
    for pair in _QUOTES:
        if len(name) >= 2 and name[0] == pair[0] and name[-1] == pair[1]:
            name = name[1:-1].strip()
    name = name.rstrip(".,;:").strip()
    name = name.replace("_", " ")
    return re.sub(r" {2,}", " ", name)


def fits_clip(names, template):
    """{name: tokens needed} for names that do not fit CLIP's 77 tokens either as
    `template.format(name)` or as the learnable prompt "X*16 name." (start/end included)."""
    from ..modeling.context_prompt import class_prompt_text
    from ..modeling.tokens import CONTEXT_LENGTH, token_count

    context = " ".join(["X"] * MAX_CONTEXT_TOKENS)
    too_long = {}
    for name in names:
        text = class_prompt_text(name)
        fixed = token_count(template.format(text)) + 2
        learnable = token_count(f"{context} {text}.") + 2
        if max(fixed, learnable) > CONTEXT_LENGTH:
            too_long[name] = max(fixed, learnable)
    return too_long


def clean(raw_names, base, new, template, exclude_new=False, limit=None):
    """Validate `raw_names` for a dataset with classes `base` (training) and `new` (held
    out). `limit`: stop once that many names are kept (for sources that offer more
    candidates than asked for; the rest are not inspected)."""
    base_keys = {normalized(n) for n in base}
    new_keys = {normalized(n) for n in new}
    out = Cleaned([], 0, {k: [] for k in REASONS}, [], exclude_new)
    seen = set()
    pending = []  # passed every check but the token count, which is batched below

    def settle():
        too_long = fits_clip([n for n, _ in pending], template)
        for name, key in pending:
            if name in too_long:
                out.dropped["too_many_tokens"].append(name)
                continue
            out.names.append(name)
            if key in new_keys:
                out.new_overlap.append(name)
        pending.clear()

    for raw in raw_names:
        if limit is not None and len(out.names) >= limit:
            break
        out.received += 1
        if not isinstance(raw, str):
            out.dropped["not_text"].append(repr(raw))
            continue
        if not raw.strip().isprintable():  # control, format (zero-width) or line characters
            out.dropped["non_printable"].append(raw)
            continue
        name = tidy(raw)
        key = normalized(name)
        if not key:
            out.dropped["empty"].append(raw)
        elif len(name) > MAX_NAME_CHARS:
            out.dropped["too_many_chars"].append(raw)
        elif key in seen:
            out.dropped["duplicate"].append(raw)
        elif key in base_keys:
            out.dropped["base"].append(raw)
        elif exclude_new and key in new_keys:
            out.dropped["new"].append(raw)
        else:
            seen.add(key)
            pending.append((name, key))
            if limit is not None and len(out.names) + len(pending) >= limit:
                settle()
    settle()
    return out
