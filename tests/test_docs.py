"""The docs stay readable and linked: README.md is a five-minute page with its Quickstart, and
every relative link in README.md, docs/*.md and benchmarks/README.md reaches a file in the
repo (and, with `#anchor`, a heading of that file, as GitHub names it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12_500  # a newcomer reads it in five minutes; the rest goes to docs/ and benchmarks/
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where brackets are not links."""
    return CODE.sub("", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """GitHub's ids for the headings: lowercased, punctuation dropped, spaces to dashes,
    a repeated id numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    ids = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text(encoding="utf-8"))) if not re.match(r"[a-z]+:", t)]


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES}): move detail to docs/"


def test_readme_has_the_quickstart():
    text = README.read_text(encoding="utf-8")
    quickstart = re.search(r"^## Quickstart\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert quickstart, "README.md has no '## Quickstart' section"
    for command in ("make repro", "make test"):
        assert re.search(rf"^{command}\b", quickstart.group(1), re.M), f"the Quickstart lacks `{command}`"


def test_docs_exist():
    assert all(p.is_file() for p in DOCS) and len(DOCS) > 2, [str(p) for p in DOCS]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.is_file() or ROOT not in (dest, *dest.parents):
            broken.append(f"{target} (no such file in the repo)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    assert not broken, f"{doc.relative_to(ROOT)}: " + ", ".join(broken)


def test_the_links_are_found():
    """The link reader sees the README's links (an empty list would pass the test above)."""
    links = relative_links(README)
    assert "docs/architecture.md" in links and any(t.startswith("benchmarks/README.md#") for t in links), links
