"""`make docs`: an MkDocs site of the README, the docs pages and the executed notebooks that works offline: pages for
every notebook with its outputs, no resource loaded from the web, equations as MathML, every local link resolving."""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from matplotlib.figure import Figure
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from medseg_core.errors import MissingDataError
from medseg_core.site import build_site, equations_to_mathml, main

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="the docs extra is not installed (make install)")


def _png() -> str:
    buffer = io.BytesIO()
    Figure(figsize=(1, 1)).savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _executed(folder: Path, names: list[str]) -> None:
    """Notebooks as papermill leaves them: a title with an equation, a link, and a cell with a printed line and a
    figure."""
    folder.mkdir(parents=True)
    for name in names:
        code = new_code_cell("print('hello')", execution_count=1, outputs=[
            new_output("stream", name="stdout", text=f"output of {name}\n"),
            new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})])
        text = (f"# {name.upper()} · title\n\nDice $D = 2|A \\cap B| / (|A| + |B|)$ and\n\n$$x_i^2 \\geq 0$$\n\n"
                "See the [glossary](../docs/glossary.md#dice) and the [README](../README.md).")
        nbformat.write(new_notebook(cells=[new_markdown_cell(text), code]), folder / f"{name}.ipynb")


def _local_targets(page: Path, site: Path) -> list[tuple[str, Path]]:
    """The local files a page's ``href`` and ``src`` attributes point at."""
    targets = []
    for url in re.findall(r'(?:href|src)="([^"]*)"', page.read_text(encoding="utf-8")):
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        targets.append((url, (page.parent / unquote(parts.path)).resolve()))
    return targets


def test_equations_become_mathml_except_in_code():
    converted, failures = equations_to_mathml("<p>a $x^2$ b</p><pre>$not math$</pre><p>\\[y_1\\] and $5 $6</p>")
    assert failures == [] and converted.count("<math") == 2 and "<pre>$not math$</pre>" in converted
    assert 'display="block"' in converted and "$5 $6" in converted  # prices are not equations
    assert equations_to_mathml("<p>$\\frac{1}{$</p>")[1]  # a broken equation is reported, not dropped


@pytest.mark.slow
def test_site_works_offline_with_every_notebook_and_link(tmp_path):
    names = ["00_quickstart", "01_xca_sequences", "09_synthetic_to_real"]
    _executed(tmp_path / "executed", names)
    index = build_site(tmp_path / "executed", tmp_path / "site", home=REPO)  # strict: a broken link fails it
    site = index.parent
    assert index.is_file() and (site / "search" / "search_index.js").is_file()  # search without a server
    assert "medseg-kit" in index.read_text(encoding="utf-8")
    for name in names:
        page = (site / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert f"output of {name}" in page and "data:image/png;base64" in page
        assert page.count("<math") == 2 and "$" not in re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S)
        assert 'href="../docs/glossary.html#dice"' in page and 'href="../index.html"' in page
    pages = sorted(site.rglob("*.html"))
    assert {"docs/results.html", "docs/speed.html", "docs/reproducibility.html", "docs/reference.html",
            "docs/glossary.html", "data/index.html"} <= {p.relative_to(site).as_posix() for p in pages}
    for page in pages:
        if page.name == "404.html":
            continue  # served for any missing URL, so its links start at the server's root
        text = page.read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(https?://[^"]+)"', text)
        assert not external, f"{page.relative_to(site)} loads {external}"
        assert "mathjax" not in re.sub(r"<!--.*?-->", "", text, flags=re.S).lower(), page
        missing = [url for url, target in _local_targets(page, site) if not target.exists()]
        assert not missing, f"{page.relative_to(site)} links to missing {missing}"


def test_missing_run_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    (tmp_path / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text())
    with pytest.raises(MissingDataError, match="make reproduce PROFILE"):
        main(["--profile", "smoke"])
