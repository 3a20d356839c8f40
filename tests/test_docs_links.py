"""Every relative link in the README, the docs pages and the notebooks' markdown points at a file the checkout has,
and every ``#anchor`` at a heading of that file (GitHub's heading slugs) or an explicit ``<a id=...>``."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "data/README.md",
                                  "data/real/README.md")] + sorted((REPO / "docs").glob("*.md"))
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # '#' comments in code blocks are not headings
    headings = {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    return headings | set(re.findall(r'<a (?:id|name)="([^"]+)"', text))  # explicit anchors too


def broken_links(text: str, base: Path) -> list[str]:
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
            continue  # https:, mailto: ...
        path, _, anchor = target.partition("#")
        page = (base / path).resolve() if path else None
        if page is not None and not page.exists():
            broken.append(f"{target} (no file {page})")
        elif anchor and page is not None and page.suffix == ".md" and anchor not in anchors(page):
            broken.append(f"{target} (no heading #{anchor} in {page.name})")
    return broken


def test_slug_follows_github_and_broken_links_are_found():
    assert slug("Learning path and a 90-minute lab") == "learning-path-and-a-90-minute-lab"
    assert slug("Statistics: what the tables report") == "statistics-what-the-tables-report"
    found = broken_links("[a](nope.md) [b](README.md#no-such-heading) [c](README.md#troubleshooting) [d](https://x.org)",
                         REPO)
    assert [link.split()[0] for link in found] == ["nope.md", "README.md#no-such-heading"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_page_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    own = [f"#{a}" for a in re.findall(r"\]\(#([^)]+)\)", text) if a not in anchors(page)]
    assert not broken_links(text, page.parent) + own


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_links_resolve(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    assert not broken_links(text, notebook.parent)
