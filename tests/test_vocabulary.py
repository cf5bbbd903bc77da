"""One vocabulary: the docs and every message spell a command `sar-prompt COMMAND` and a
flag by its name in docs/cli.md's table, and each fact the docs state is stated once.
(docs/cli.md lists the older entry points and spellings, which keep working.)"""
import ast
import re
from pathlib import Path

from conftest import REPO

# `python -m sar_prompt.X` for a tool that has a `sar-prompt` subcommand
OLD_COMMAND = re.compile(r"python -m sar_prompt\.(results|data|novel|orchestration\.bench)\b")
# an older flag spelling inside a sentence (the flags themselves stay as aliases)
OLD_FLAG = re.compile(r"(?<![\w-])--(root|output-dir|config-file|out-dir)\b(?!/)")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ALIASES = REPO / "docs" / "cli.md"  # where the older spellings are listed, as such


def test_docs_spell_each_command_one_way():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in DOCS if path != ALIASES
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if OLD_COMMAND.search(line) or OLD_FLAG.search(line)
             and not re.search(r"CoOp's|older|spellings", line)]
    assert not found, "\n".join(found)


def message_strings(path):
    """(line, text) of the string constants of a module that users read: messages and help,
    not argparse's own option names or `prog`, not the words of a train.py command line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            skip.update(id(a) for a in node.args)
        if isinstance(node, ast.keyword) and node.arg == "prog":
            skip.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, (ast.List, ast.Tuple)):  # argv lists: ["--root", DATA, ...]
            skip.update(id(e) for e in node.elts)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip]


def test_messages_spell_each_command_and_flag_one_way():
    modules = [p for folder in ("sar_prompt", "trainers", "datasets")
               for p in sorted((REPO / folder).rglob("*.py"))]
    found = []
    for path in modules:
        for line, text in message_strings(path):
            if path.name in ("cli.py", "vocabulary.py"):  # they name the older spellings
                continue
            if OLD_COMMAND.search(text) or OLD_FLAG.search(text) and "CoOp's" not in text:
                found.append(f"{path.relative_to(REPO)}:{line}: {text[:100]!r}")
    assert not found, "\n".join(found)


def test_the_demos_time_is_stated_once():
    """README gives the demo's measured time; nothing else restates it in other words (a
    duration within two lines of the word demo)."""
    duration = re.compile(r"\b(minutes?|seconds|\d+(\.\d+)? ?s)\b(?! of CPU)")
    said = []
    for path in [*DOCS, *sorted((REPO / "sar_prompt").rglob("*.py"))]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            near = " ".join(lines[max(0, n - 2):n + 3])
            if duration.search(line) and re.search(r"\bdemo\b", near, re.I) \
                    and "tests/" not in near:  # a test's own time, not the demo's
                said.append(f"{path.relative_to(REPO)}:{n + 1}: {line.strip()}")
    readme = [s for s in said if s.startswith("README.md")]
    assert len(readme) >= 1 and said == readme, "\n".join(said)
