"""Turning a raw list of names (from GPT-4o, a file, CLIP's vocabulary or WordNet) into a
novel-class list SAR can use, and saying what was dropped and why.

Every source goes through `clean`, so every shipped or generated file obeys the same rules.
The input is untrusted text (a model's answer, a user's file): names are stripped and
normalised; names equal to or holding a secret (any 8 characters in a row of the API key,
a token from the environment, anything shaped like a credential) are dropped and never
recorded; non-printable, empty and
over-long names are dropped; so is what is not a plausible class name (markup or code, URLs
and addresses, instructions or chat sentences, more than MAX_WORDS words); then duplicate
(case/punctuation-insensitive, see `normalized`) and base-class names; then names that do
not fit CLIP's 77 tokens in the dataset's hand-crafted template or in the learnable prompt
with up to MAX_CONTEXT_TOKENS context tokens. Names equal to a held-out new class are
counted and kept (the paper's protocol) or dropped with `exclude_new`.
"""
import os
import re
import unicodedata
from dataclasses import dataclass, field

from sar_prompt.novel import MAX_NAME_CHARS, normalized
from sar_prompt.novel.redact import API_KEY_ENV, Secrets

MAX_CONTEXT_TOKENS = 16  # the longest learnable context the CoOp family uses (CoOp's default)
MAX_WORDS = 10  # the longest class name of the 11 datasets has 7 ("2012 Ford F-450 Super ...")

# Why a name was dropped, in the order the checks run, with the words reports use.
REASONS = {
    "not_text": "not a string",
    "secret": "secrets (an API key or token; not recorded)",
    "non_printable": "non-printable characters",
    "empty": "empty (no letter or digit)",
    "too_many_chars": f"over {MAX_NAME_CHARS} characters",
    "markup": "markup or code (HTML, entities, Markdown, brackets)",
    "url": "URLs, web or e-mail addresses",
    "instruction": "instructions or sentences, not names",
    "too_many_words": f"over {MAX_WORDS} words",
    "duplicate": "duplicates (case and punctuation ignored)",
    "base": "base (training) classes",
    "new": "held-out new classes (--exclude-new)",
    "too_many_tokens": "too long for CLIP's 77 tokens",
}
SECRET_RECORD = "[redacted]"  # what the audit holds for a dropped secret

_LIST_MARKER = re.compile(r"^(?:[-*\u2022]|\d{1,4}[.)])\s+")  # "- x", "* x", "12. x", "3) x"
_QUOTES = ("\"\"", "''", "\u201c\u201d", "\u2018\u2019", "``")

# What no class name of the 11 datasets holds (they use letters, digits, spaces, ' - . / ( )).
_MARKUP = re.compile(r"[<>{}\[\]`|\\=*#~^]|&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.I)
_URL = re.compile(r"[a-z][a-z0-9+.-]*://|\bwww\.|[\w.+-]+@[\w-]+\.\w|"
                  r"\b[\w-]+\.(?:com|org|net|edu|gov|io|ai|info|biz|co|uk|de|fr|jp|cn|ru)\b",
                  re.I)
# Chat and instruction text: a reply's framing, orders to the reader, talk about the prompt.
_INSTRUCTION = re.compile(
    r"^(?:ignore|disregard|forget|please|note|here (?:is|are)|sure|certainly|okay|ok|sorry|"
    r"remember|output|return|print|respond|reply|answer|write|do not|don't|step \d|"
    r"i (?:am|will|can|cannot|can't|have|hope)|i'm|i'll|as an?)(?=[\s,.!:]|$)"
    r"|\b(?:you|your|yourself|instructions?|prompt|api key|password|assistant|"
    r"language model|chatgpt|the (?:above|following|list))\b|\?|!\s*\S|[;:]", re.I)
# Shapes of credentials: provider key prefixes, JWTs, long letter-and-digit runs.
_CREDENTIAL = re.compile(
    r"\b(?:sk|pk|rk)-[\w-]{12,}|\bgh[pousr]_\w{20,}|\bAKIA[0-9A-Z]{16}\b|"
    r"\bxox[abpr]-[\w-]{10,}|\bAIza[\w-]{30,}|\beyJ[\w-]{10,}\.[\w-]{10,}|"
    r"\b(?=\w*\d)(?=\w*[A-Za-z])\w{24,}")
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH(?!OR)", re.I)
MIN_SECRET_CHARS = 8  # shorter environment values are not treated as secrets


def environment_secrets():
    """Values of environment variables whose names say they are secret (…_API_KEY, …TOKEN)."""
    return [v for k, v in os.environ.items()
            if _SECRET_ENV.search(k) and len(v.strip()) >= MIN_SECRET_CHARS]


def key_secrets(secrets=()):
    """Secrets (`secrets`, e.g. the client's API key, and $OPENAI_API_KEY) that no output
    may show any FRAGMENT characters in a row of (see redact.py)."""
    return Secrets([*secrets, os.environ.get(API_KEY_ENV, "")])


def holds_secret(name, secrets=(), fragments=None):
    """True if `name` contains one of `secrets`, equals one up to case and punctuation,
    shows a fragment of a key (`fragments`, a redact.Secrets; default: `key_secrets()`),
    or is shaped like a credential."""
    key = normalized(name)
    for secret in secrets:
        secret = secret.strip()
        if len(secret) >= MIN_SECRET_CHARS and (secret in name or normalized(secret) == key):
            return True
    fragments = key_secrets() if fragments is None else fragments
    return fragments.holds(name) or bool(_CREDENTIAL.search(name))


def implausible(name):
    """Why a tidied name is not a plausible class name (a REASONS key), or None."""
    if _MARKUP.search(name):
        return "markup"
    if _URL.search(name):
        return "url"
    if _INSTRUCTION.search(name):
        return "instruction"
    if len([w for w in name.split() if normalized(w)]) > MAX_WORDS:
        return "too_many_words"
    return None


def screen(names, secrets=()):
    """Problems of names already in a list that `clean` would have dropped as secrets or as
    not plausible class names (markup, URLs, instructions, too many words), in the words
    `sar-prompt novel validate` and the SAR trainer report them. Secrets are
    counted, never shown."""
    problems = []
    fragments = key_secrets(secrets)
    secrets = [*secrets, *environment_secrets()]
    secret = [n for n in names if holds_secret(n, secrets, fragments)]
    if secret:
        problems.append(f"{len(secret)} names hold a secret (an API key or token; not shown): "
                        "remove them, and replace the key if the list was shared")
    odd = {}
    for name in names:
        if name in secret:
            continue
        reason = implausible(name)
        if reason:
            odd.setdefault(reason, []).append(name)
    for reason, found in odd.items():
        problems.append(f"{len(found)} names are {REASONS[reason]}: "
                        f"{', '.join(map(repr, found[:5]))}")
    return problems


def _recordable(raw):
    """`raw` as the audit can store it: lone surrogates (valid in JSON, not in UTF-8) escaped."""
    try:
        raw.encode("utf-8")
        return raw
    except UnicodeEncodeError:
        return repr(raw)


@dataclass
class Cleaned:
    names: list
    received: int
    dropped: dict = field(default_factory=dict)  # reason -> [name as received]
    new_overlap: list = field(default_factory=list)
    exclude_new: bool = False
    cap: int = None           # names asked for, when an answer may hold more (see `capped`)
    unused: int = 0           # names of the answer beyond the cap, never inspected

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
        if self.unused:
            text += (f"; capped at the {self.cap} names asked for: {self.unused} more names in "
                     "the answer were not used")
        return text

    def audit(self, class_list):
        return {
            "class_list": class_list,
            "received": self.received,
            "kept": len(self.names),
            "dropped": {k: list(v) for k, v in self.dropped.items() if v},
            "new_overlap": {"policy": "excluded" if self.exclude_new else "kept",
                            "count": len(self.new_overlap), "names": list(self.new_overlap)},
            **({"capped": {"asked": self.cap, "unused": self.unused}} if self.unused else {}),
        }


def _tidy_once(name):
    name = unicodedata.normalize("NFC", name).strip()
    name = _LIST_MARKER.sub("", name)
    for pair in _QUOTES:
        if len(name) >= 2 and name[0] == pair[0] and name[-1] == pair[1]:
            name = name[1:-1].strip()
    name = name.rstrip(".,;:").strip()
    name = name.replace("_", " ")
    return re.sub(r" {2,}", " ", name)


def tidy(raw: str) -> str:
    """Strip a name: outer space, list markers, matching quotes, trailing punctuation that
    would double the prompt's full stop, underscores (prompts read them as spaces), runs of
    spaces; Unicode NFC. Inner characters are left alone. Repeated until nothing changes
    ("- - 'tiger'."), so tidying a tidy name changes nothing."""
    name = _tidy_once(raw)
    while True:  # each round that changes the name shortens it or removes an underscore
        again = _tidy_once(name)
        if again == name:
            return name
        name = again


def fits_clip(names, template):
    """{name: tokens needed} for names that do not fit CLIP's 77 tokens either as
    `template.format(name)` or as the learnable prompt "X*16 name." (start/end included)."""
    from sar_prompt.modeling.bpe import CONTEXT_LENGTH, class_prompt_text, token_count  # no torch

    context = " ".join(["X"] * MAX_CONTEXT_TOKENS)
    too_long = {}
    for name in names:
        text = class_prompt_text(name)
        fixed = token_count(template.format(text)) + 2
        learnable = token_count(f"{context} {text}.") + 2
        if max(fixed, learnable) > CONTEXT_LENGTH:
            too_long[name] = max(fixed, learnable)
    return too_long


def clean(raw_names, base, new, template, exclude_new=False, limit=None, secrets=()):
    """Validate `raw_names` for a dataset with classes `base` (training) and `new` (held
    out). `limit`: stop once that many names are kept (for sources that offer more
    candidates than asked for; the rest are not inspected). `secrets`: strings no name may
    hold (the API key: nor any 8 characters of it in a row), besides those of
    `environment_secrets()`."""
    fragments = key_secrets(secrets)
    secrets = [*secrets, *environment_secrets()]
    base_keys = {normalized(n) for n in base}
    new_keys = {normalized(n) for n in new}
    out = Cleaned([], 0, {k: [] for k in REASONS}, [], exclude_new)
    seen = set()
    pending = []  # passed every check but the token count, which is batched below

    def why_dropped(name, key):
        if not key:
            return "empty"
        if len(name) > MAX_NAME_CHARS:
            return "too_many_chars"
        return implausible(name) or ("duplicate" if key in seen else
                                     "base" if key in base_keys else
                                     "new" if exclude_new and key in new_keys else None)

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
            shown = repr(raw)
            out.dropped["not_text"].append(SECRET_RECORD if holds_secret(
                shown, secrets, fragments) else _recordable(shown))
            continue
        if holds_secret(raw, secrets, fragments):  # first: a secret must not reach any record
            out.dropped["secret"].append(SECRET_RECORD)
            continue
        if not raw.strip().isprintable():  # control, format (zero-width) or line characters
            out.dropped["non_printable"].append(_recordable(raw))
            continue
        name = tidy(raw)
        key = normalized(name)
        reason = why_dropped(name, key)
        if reason is not None:
            out.dropped[reason].append(raw)
        else:
            seen.add(key)
            pending.append((name, key))
            if limit is not None and len(out.names) + len(pending) >= limit:
                settle()
    settle()
    return out
