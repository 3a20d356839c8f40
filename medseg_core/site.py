"""A static site of executed notebooks: one HTML page per notebook (nbconvert) and an index page linking them.

``make docs`` (``python -m medseg_core.site --profile cpu``) reads the executed copies that ``make reproduce``
or ``medseg notebooks --profile <profile>`` wrote to ``outputs/notebooks/<profile>/`` and writes the site to
``outputs/site/<profile>/``; open its ``index.html`` in a browser. The glossary (``docs/glossary.md``) comes
along as ``glossary.html`` when the checkout has it. Running the notebooks is left to
:mod:`medseg_core.notebooks`; this module only converts.
"""
from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Sequence

from .config import kit_home

__all__ = ["notebook_title", "build_site", "main"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{font-family: sans-serif; max-width: 56rem; margin: 2rem auto; line-height: 1.5}}
td {{padding: 0.2rem 1rem 0.2rem 0}}</style></head>
<body>
{body}
</body></html>
"""


def notebook_title(path: str | Path) -> str:
    """The first Markdown heading of a notebook (without the ``#``), else its file name."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return Path(path).stem


def build_site(executed_dir: str | Path, site_dir: str | Path, glossary: str | Path | None = None) -> Path:
    """Convert every notebook of ``executed_dir`` to ``site_dir/<name>.html`` and write ``site_dir/index.html``.

    Args:
        executed_dir: executed notebooks (``*.ipynb``), e.g. ``outputs/notebooks/cpu``.
        site_dir: where the pages go (created).
        glossary: a Markdown file to add as ``glossary.html`` (skipped when ``None`` or missing).

    Returns:
        The path of ``index.html``.

    Raises:
        FileNotFoundError: ``executed_dir`` holds no notebook; the message says how to make them.
    """
    from nbconvert import HTMLExporter  # imported here: only site builds need it

    executed_dir, site_dir = Path(executed_dir), Path(site_dir)
    notebooks = sorted(executed_dir.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(
            f"no executed notebooks in {executed_dir}: run them first with `make reproduce PROFILE=<profile>` "
            "(or `medseg notebooks --profile <profile>`), then build the site again")
    site_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    rows = []
    for notebook in notebooks:
        body, _ = exporter.from_filename(str(notebook))
        (site_dir / f"{notebook.stem}.html").write_text(body, encoding="utf-8")
        rows.append(f'<tr><td><a href="{html.escape(notebook.stem)}.html">{html.escape(notebook.name)}</a></td>'
                    f"<td>{html.escape(notebook_title(notebook))}</td></tr>")
    links = ""
    if glossary is not None and Path(glossary).is_file():
        import mistune  # nbconvert's Markdown renderer

        text = mistune.html(Path(glossary).read_text(encoding="utf-8"))
        (site_dir / "glossary.html").write_text(_PAGE.format(title="Glossary", body=text), encoding="utf-8")
        links = '<p>The words the notebooks use: <a href="glossary.html">glossary</a>.</p>'
    body = (f"<h1>medseg-kit notebooks</h1>\n<p>Executed copies from {html.escape(executed_dir.name)!s} "
            f"({len(notebooks)} notebooks).</p>\n{links}\n<table>\n" + "\n".join(rows) + "\n</table>")
    index = site_dir / "index.html"
    index.write_text(_PAGE.format(title="medseg-kit notebooks", body=body), encoding="utf-8")
    return index


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m medseg_core.site [--profile cpu] [--executed DIR] [--output DIR]``; prints the index path."""
    parser = argparse.ArgumentParser(description="Build a static HTML site from executed notebooks.")
    parser.add_argument("--profile", default="cpu", help="profile of the executed run (default: cpu)")
    parser.add_argument("--executed", type=Path, help="executed notebooks (default outputs/notebooks/<profile>)")
    parser.add_argument("--output", type=Path, help="site folder (default outputs/site/<profile>)")
    args = parser.parse_args(argv)
    home = kit_home()
    index = build_site(args.executed or home / "outputs" / "notebooks" / args.profile,
                       args.output or home / "outputs" / "site" / args.profile, glossary=home / "docs" / "glossary.md")
    print(f"site written: {index}")
    return index


if __name__ == "__main__":
    main()
