"""`make docs`: the static site links a page for every executed notebook, with the notebooks' outputs in it."""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from medseg_core.site import build_site, main, notebook_title

GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"


def _png() -> str:
    buffer = io.BytesIO()
    Figure(figsize=(1, 1)).savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _executed(folder: Path, names: list[str]) -> None:
    """Notebooks as papermill leaves them: a title, code cells with a printed line and a figure."""
    folder.mkdir(parents=True)
    for name in names:
        code = new_code_cell("print('hello')", execution_count=1, outputs=[
            new_output("stream", name="stdout", text=f"output of {name}\n"),
            new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})])
        notebook = new_notebook(cells=[new_markdown_cell(f"# {name.upper()} · title\n\ntext"), code])
        nbformat.write(notebook, folder / f"{name}.ipynb")


def test_index_links_every_executed_notebook(tmp_path):
    names = ["00_quickstart", "01_xca_sequences", "08_explorers"]
    _executed(tmp_path / "executed", names)
    index = build_site(tmp_path / "executed", tmp_path / "site", glossary=GLOSSARY)
    links = re.findall(r'href="([^"]+)"', index.read_text())
    assert links == ["glossary.html"] + [f"{name}.html" for name in names]
    for name in names:
        page = (tmp_path / "site" / f"{name}.html").read_text()
        assert f"output of {name}" in page and "data:image/png;base64" in page
    assert f"{names[0].upper()} · title" in index.read_text()
    assert 'id="empty-mask-rule"' in (tmp_path / "site" / "glossary.html").read_text()


def test_title_falls_back_to_the_file_name(tmp_path):
    path = tmp_path / "05_untitled.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), path)
    assert notebook_title(path) == "05_untitled"


def test_missing_run_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make reproduce PROFILE"):
        main(["--profile", "smoke"])
