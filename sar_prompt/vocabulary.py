"""The words every sar-prompt command shares: one flag and one environment variable per
setting, and the spellings the older commands used for them, which keep working.

Each setting is read from its flag, else from SAR_PROMPT_<NAME>, else from the short name
the scripts always read (DATA, OUTPUT, ...); the long name wins when both are set, so a
setting meant for sar-prompt is never overridden by a generic variable of the same name.
"""
import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Term:
    flag: str                   # the spelling every command accepts
    env: Optional[str]          # SAR_PROMPT_<NAME>
    short_env: Optional[str]    # the older, shorter variable, still read
    meaning: str
    old_flags: Tuple[str, ...] = ()  # earlier spellings, kept as aliases (where, in words)


TERMS = {
    "data": Term("--data", "SAR_PROMPT_DATA", "DATA", "the folder that holds the datasets",
                 ("--root (train, data, demo prepare)",)),
    "output": Term("--output", "SAR_PROMPT_OUTPUT", "OUTPUT",
                   "where results go: the results root of run / base2new / demo (and the one "
                   "results reads), a run's folder for train, the output folder of diagnose "
                   "and novel",
                   ("--output-dir (train)", "results' positional ROOT",
                    "--out-dir, --out (novel)")),
    "config": Term("--config", "SAR_PROMPT_CONFIG", "CFG",
                   "the trainer config: a name under configs/trainers/ or a .yaml file",
                   ("--config-file (train)",)),
    "datasets": Term("--datasets", "SAR_PROMPT_DATASETS", "DATASETS",
                     "the datasets to run or show", ("--dataset (novel, repeatable)",)),
    "trainers": Term("--trainers", None, None,
                     "the trainers to run (one after the other) or show",
                     ("TRAINER (positional, run)", "--trainer / --compare (results)")),
    "seeds": Term("--seeds", "SAR_PROMPT_SEEDS", "SEEDS", "the seeds"),
    "shots": Term("--shots", "SAR_PROMPT_SHOTS", "SHOTS", "shots per class"),
    "gpus": Term("--gpus", "SAR_PROMPT_GPUS", "GPUS",
                 "GPU ids; one job per GPU at a time"),
}


def words(value):
    """The words of a list setting: "1 2 3", "1,2,3" -> ["1", "2", "3"]."""
    return [w for w in re.split(r"[\s,]+", value or "") if w]


def lookup(name, environ=None):
    """(variable, value) of the environment variable that sets `name`: SAR_PROMPT_<NAME>,
    else its short variable; (None, None) when neither is set or both are empty."""
    environ = os.environ if environ is None else environ
    term = TERMS[name]
    for variable in (term.env, term.short_env):
        value = environ.get(variable, "") if variable else ""
        if value:
            return variable, value
    return None, None


def setting(name, default=None, environ=None):
    """The environment's value of setting `name` (SAR_PROMPT_<NAME>, else its short
    variable), or `default` when neither is set or both are empty."""
    _, value = lookup(name, environ)
    return default if value is None else value


def env_help(name):
    """'$SAR_PROMPT_DATA or $DATA', for a flag's help text."""
    term = TERMS[name]
    return f"${term.env} or ${term.short_env}"


class DeprecatedAlias(argparse.Action):
    """Stores like the option it stands for, and says once which spelling to use now."""

    def __init__(self, option_strings, dest, preferred, **kwargs):
        self.preferred = preferred
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string and option_string != self.preferred:
            print(f"warning: {option_string} is deprecated; use {self.preferred} (same "
                  "meaning).", file=sys.stderr)
        setattr(namespace, self.dest, values)


class OneSpelling(argparse.Action):
    """Stores like "store", and refuses a second spelling of the same option (--data and
    --root, --output and --output-dir): which of two values was meant is unknown."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault("_spellings", {})
        first = seen.get(self.dest)
        if first is not None and option_string and first[0] != option_string:
            raise argparse.ArgumentError(
                self, f"given twice, as {first[0]} {first[1]} and as {option_string} {values}: "
                      f"these are two spellings of one option; give it once (as "
                      f"{self.option_strings[0]}).")
        seen[self.dest] = (option_string, values)
        setattr(namespace, self.dest, values)
