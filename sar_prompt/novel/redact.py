"""Keeping a secret (the API key) out of everything sar-prompt prints or writes.

A secret counts as shown as soon as FRAGMENT of its characters in a row are: a key cut
short by a message's length limit, or a prefix a model repeats in its answer, leaks as
surely as the whole key. `Secrets` finds and masks every such run; a text is redacted
before it is cut short, never after.
"""
API_KEY_ENV = "OPENAI_API_KEY"
FRAGMENT = 8  # this many characters of a secret in a row count as the secret
MASK = "[redacted]"


class Secrets:
    """The secrets no output may hold, by fragments of FRAGMENT characters (a secret
    shorter than that, only whole)."""

    def __init__(self, values=(), mask=MASK):
        self.mask = mask
        values = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        self._windows = {v[i:i + FRAGMENT] for v in values if len(v) >= FRAGMENT
                         for i in range(len(v) - FRAGMENT + 1)}
        self._short = sorted({v for v in values if len(v) < FRAGMENT}, key=len, reverse=True)

    def __bool__(self):
        return bool(self._windows or self._short)

    def _covered(self, text):
        """[(start, end)] of the merged runs of `text` that show a secret."""
        spans = [(i, i + FRAGMENT) for i in range(len(text) - FRAGMENT + 1)
                 if text[i:i + FRAGMENT] in self._windows]
        for value in self._short:
            start = text.find(value)
            while start >= 0:
                spans.append((start, start + len(value)))
                start = text.find(value, start + 1)
        merged = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def holds(self, text):
        return bool(self) and bool(self._covered(str(text)))

    def redact(self, text):
        """`text` (any object, as str) with every run that shows a secret masked."""
        text = str(text)
        if not self:
            return text
        out, last = [], 0
        for start, end in self._covered(text):
            out += [text[last:start], self.mask]
            last = end
        return "".join(out + [text[last:]])

    def redact_json(self, value):
        """A JSON-like value with every string in it (keys too) redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_json(k): self.redact_json(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_json(v) for v in value]
        return value
