"""The front door: README.md stays short, says its caveats on the first screen, and every
relative link in the documentation leads to an existing file (and heading)."""
import re

import pytest

from conftest import REPO

README_MAX_BYTES = 15_000
FIRST_SCREEN_LINES = 40
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md",
         *sorted((REPO / "docs").glob("*.md"))]
# Pages written in parallel on other branches: a link to them is allowed before they land.
PENDING = {REPO / "docs" / "results.md", REPO / "docs" / "runs.md"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def prose(path):
    """The page without its fenced code blocks (their `#` lines are comments, not headings)."""
    return re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8"))


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    return {slug(m) for m in re.findall(r"(?m)^#+ (.+)$", prose(path))}


def test_readme_is_short():
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail to docs/"


def test_readme_states_its_caveats_on_the_first_screen():
    first = " ".join((REPO / "README.md").read_text(encoding="utf-8")
                     .splitlines()[:FIRST_SCREEN_LINES]).lower()
    for caveat in ("not the authors' code", "our reading", "hand-written", "not gpt-4o",
                   "cpu"):
        assert caveat in first, f"{caveat!r} is not in README.md's first {FIRST_SCREEN_LINES} lines"


def test_license_and_citation():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    citation = (REPO / "CITATION.cff").read_text()
    assert "cff-version:" in citation and "preferred-citation:" in citation
    assert "2502.11969" in citation


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if path in PENDING and not path.exists():
            continue
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with that anchor in {path.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme_or_another_page():
    linked = set()
    for page in PAGES:
        for target in LINK.findall(prose(page)):
            file = target.partition("#")[0]
            if file and not re.match(r"[a-z]+:", target):
                linked.add((page.parent / file).resolve())
    orphans = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not orphans, f"not linked from anywhere: {orphans}"
