"""What the data checks find: problems that name the path and the fix, and per-split counts.

Training and `sar-prompt data check` share these: training stops on the first
batch of errors (raising DataError with their messages) and prints the warnings; the doctor
lists all of them.
"""
from dataclasses import dataclass, field

from sar_prompt.errors import DataError

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    severity: str  # ERROR: training cannot work; WARNING: it works, but read this
    message: str   # what is wrong, where (a path or a key) and how to fix it

    def __str__(self):
        return f"{self.severity}: {self.message}"


def error(message):
    return Problem(ERROR, message)


def warning(message):
    return Problem(WARNING, message)


def errors_of(problems):
    return [p for p in problems if p.severity == ERROR]


def raise_errors(problems, log=print):
    """Print the warnings; raise DataError carrying every error's message, if any."""
    for p in problems:
        if p.severity == WARNING:
            log(f"[sar_prompt] warning: {p.message}")
    errors = errors_of(problems)
    if errors:
        raise DataError("\n".join(p.message for p in errors))


def examples(items, n=3):
    """'a, b, c' or 'a, b, c (and 7 more)'."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f" (and {len(items) - n} more)" if len(items) > n else "")


@dataclass
class Report:
    """The doctor's findings for one dataset."""
    dataset: str
    root: str
    problems: list = field(default_factory=list)
    counts: list = field(default_factory=list)  # (split, half, images, classes)
    images_checked: int = 0
    deep: bool = False

    @property
    def ok(self):
        return not errors_of(self.problems)

    def render(self):
        lines = [f"{self.dataset} under {self.root}"]
        if self.counts:
            lines.append(f"  {'split':<6} {'half':<5} {'images':>8} {'classes':>8}")
            lines += [f"  {s:<6} {h:<5} {n:>8} {c:>8}" for s, h, n, c in self.counts]
        if self.images_checked:
            how = "decoded in full" if self.deep else "header and end marker checked"
            lines.append(f"  {self.images_checked} image(s) verified ({how})")
        for p in self.problems:
            lines.append(f"  {p}")
        n_err = len(errors_of(self.problems))
        n_warn = len(self.problems) - n_err
        lines.append("  OK: ready for training" if self.ok and not n_warn else
                     "  OK, with warnings" if self.ok else
                     f"  NOT READY: {n_err} error(s), {n_warn} warning(s)")
        return "\n".join(lines)
