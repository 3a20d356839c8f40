"""The notebooks and the README's learning path speak to learners: no words of the kit's development process."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from medseg_core.notebooks import list_notebooks

README = Path(__file__).resolve().parents[1] / "README.md"
DEVELOPMENT_WORDS = [  # how the kit was built, not what a learner needs
    r"parent (?:[\w+.-]+ )?repositor(?:y|ies)", r"shared/data", r"\.\./shared\b", r"earlier runs?\b", r"build machines?\b",
    r"the seed's derivative", r"\bsessions?\b", r"\bissues?\b", r"\bpull requests?\b",
]
PATTERN = re.compile("|".join(DEVELOPMENT_WORDS), flags=re.IGNORECASE)


def _offences(text: str) -> list[str]:
    return [text[max(m.start() - 40, 0):m.end() + 40].replace("\n", " ") for m in PATTERN.finditer(text)]


def learning_path() -> str:
    """The README's section "Learning path ...", up to the next heading of its level or above."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^### Learning path.*?(?=^##? |^### |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, "the README has no 'Learning path' section"
    return match.group(0)


def test_the_pattern_finds_the_words_it_should():
    assert _offences("data from the parent repository and an earlier run on the build machine")
    assert not _offences("lipid in the tissue behind the cap, seed 0, a run of 20 frames")


@pytest.mark.parametrize("notebook", list_notebooks(), ids=lambda path: path.stem)
def test_notebook_markdown_has_no_development_words(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    found = [hit for cell in cells if cell.cell_type == "markdown" for hit in _offences(cell.source)]
    assert not found, found


def test_readme_learning_path_has_no_development_words():
    assert not _offences(learning_path())
