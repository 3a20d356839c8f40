"""The kit's documentation site, built with MkDocs (Material theme, mkdocs-jupyter) and readable offline.

``make docs`` (``python -m medseg_core.site --profile cpu``) builds ``outputs/site/<profile>/``: the README as the
home page, the pages of ``docs/``, the data and licence pages, and every notebook with the outputs of an executed
run (``make reproduce`` or ``medseg notebooks --profile <profile>`` writes them to ``outputs/notebooks/<profile>/``).
:func:`build_site` stages those files in the checkout's own layout, so every relative link of the README, the docs
pages and the notebooks resolves as it does on GitHub, and builds them with the settings of ``mkdocs.yml``.
Navigation and search come from the theme (its ``offline`` plugin: the site opens from the file system). This
module is also the MkDocs hook (``hooks:`` in ``mkdocs.yml``) that turns every equation into MathML while the site
is built (:func:`equations_to_mathml`), so browsers draw them with no network and no MathJax, and that points the
notebooks' links to other pages at their HTML.
"""
from __future__ import annotations

import argparse
import html
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from medseg_core.config import kit_home
from medseg_core.errors import MissingDataError

__all__ = ["SITE_FILES", "stage_pages", "equations_to_mathml", "build_site", "main"]

SITE_FILES = ("README.md", "LICENSE", "CITATION.cff", "CHANGELOG.md", "CONTRIBUTING.md", "docs/*.md", "docs/assets/*",
              "figures/*.png", "data/README.md", "data/real/README.md", "data/real/oct_zenodo_sample/README.md",
              "data/real/oct_zenodo_sample/LICENSE.md", "data/real/xca_real_masks/README.md",
              "data/real/xca_real_masks/LICENSE")
"""The checkout's files the site shows (globs relative to the checkout; of ``data/real`` only what the kit ships);
notebooks come from the executed run."""

_LOG = logging.getLogger("mkdocs.plugins.medseg_site")
_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|(?<![\\$\w])\$(?![\s$])(.+?)(?<![\s\\])\$(?![\w$])|\\\((.+?)\\\)",
                   flags=re.DOTALL)
_VERBATIM = {"pre", "code", "script", "style", "textarea", "math"}  # their text is never math
_MATHJAX = re.compile(r"<script[^>]*(?:mathjax|MathJax)[^>]*>.*?</script>|<script src=\"\">\s*</script>",
                      flags=re.DOTALL)  # nbconvert's MathJax loader, left with an empty src by mkdocs-jupyter
_MARKDOWN_LINK = re.compile(r'href="(?![a-z]+:)([^"#]*?)\.md(#[^"]*)?"')


def stage_pages(home: str | Path, executed_dir: str | Path, stage: str | Path) -> list[Path]:
    """Copy :data:`SITE_FILES` of the checkout ``home`` and the notebooks of ``executed_dir`` (into ``notebooks/``)
    to ``stage``, keeping the checkout's layout; returns the staged notebooks.

    Raises:
        MissingDataError: ``executed_dir`` holds no notebook; the message says how to make them.
    """
    home, stage = Path(home), Path(stage)
    notebooks = sorted(Path(executed_dir).glob("*.ipynb"))
    if not notebooks:
        raise MissingDataError(
            f"no executed notebooks in {executed_dir}: run them first with `make reproduce PROFILE=<profile>` "
            "(or `medseg notebooks --profile <profile>`), then build the site again")
    for pattern in SITE_FILES:
        for source in sorted(home.glob(pattern)):
            target = stage / source.relative_to(home)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (stage / "notebooks").mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(notebook, stage / "notebooks" / notebook.name)) for notebook in notebooks]


def _to_mathml(match: re.Match, failures: list[str]) -> str:
    from latex2mathml.converter import convert

    display_dollars, display_brackets, inline_dollars, inline_parens = match.groups()
    latex = html.unescape(next(group for group in match.groups() if group is not None)).strip()
    try:
        return convert(latex, display="block" if display_dollars or display_brackets else "inline")
    except Exception as error:  # latex2mathml raises many kinds; the equation is kept as text and reported
        failures.append(f"{latex[:60]!r} ({type(error).__name__}: {error})")
        return match.group(0)


def equations_to_mathml(page_html: str) -> tuple[str, list[str]]:
    """``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` in the text of ``page_html`` (never inside ``pre``,
    ``code``, ``script``, ``style`` or existing ``math``) replaced by MathML; returns the HTML and the equations that
    could not be converted (left as they were)."""
    failures: list[str] = []
    pieces, verbatim = re.split(r"(<[^>]+>)", page_html), 0
    for index, piece in enumerate(pieces):
        tag = re.match(r"<(/?)([a-zA-Z][\w-]*)", piece)
        if tag and tag.group(2).lower() in _VERBATIM and not piece.endswith("/>"):
            verbatim += -1 if tag.group(1) else 1
        elif not tag and verbatim <= 0 and ("$" in piece or "\\(" in piece or "\\[" in piece):
            pieces[index] = _MATH.sub(lambda match: _to_mathml(match, failures), piece)
    return "".join(pieces), failures


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: equations to MathML on every page; on notebook pages also drop MathJax and point ``*.md``
    links at the pages MkDocs makes of them (``README.md`` is the home page, ``index.html``)."""
    converted, failures = equations_to_mathml(html_text)
    for failure in failures:
        _LOG.warning(f"{page.file.src_uri}: equation not converted to MathML: {failure}")
    if page.file.src_uri.endswith(".ipynb"):
        converted = _MATHJAX.sub("", converted)
        converted = _MARKDOWN_LINK.sub(_html_link, converted)
    return converted


def _html_link(match: re.Match) -> str:
    """``href="../docs/glossary.md#dice"`` -> ``href="../docs/glossary.html#dice"`` (``README`` -> ``index``)."""
    page = re.sub(r"(^|/)README$", r"\1index", match.group(1))
    return f'href="{page}.html{match.group(2) or ""}"'


def build_site(executed_dir: str | Path, site_dir: str | Path, home: str | Path | None = None,
               strict: bool = True) -> Path:
    """Build the site of the checkout ``home`` (default :func:`~medseg_core.config.kit_home`) with the notebooks of
    ``executed_dir`` into ``site_dir``, with ``home/mkdocs.yml``; returns ``site_dir/index.html``.

    Args:
        strict: a broken link or an equation that cannot be converted fails the build (MkDocs' strict mode).

    Raises:
        MissingDataError: no executed notebooks, or no ``mkdocs.yml`` in ``home``.
        mkdocs.exceptions.Abort: the build failed (in strict mode: the warnings that failed it are logged).
    """
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    home = Path(home) if home is not None else kit_home()
    settings = home / "mkdocs.yml"
    if not settings.is_file():
        raise MissingDataError(f"no mkdocs.yml in {home}: build the site from a checkout of the kit")
    site_dir = Path(site_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="medseg-site-") as stage:
        stage_pages(home, executed_dir, stage)
        config = load_config(config_file=str(settings), docs_dir=stage, site_dir=str(site_dir), strict=strict)
        build(config)
    return site_dir / "index.html"


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m medseg_core.site [--profile cpu] [--executed DIR] [--output DIR]``; prints the index path."""
    parser = argparse.ArgumentParser(description="Build the kit's documentation site from an executed run.")
    parser.add_argument("--profile", default="cpu", help="profile of the executed run (default: cpu)")
    parser.add_argument("--executed", type=Path, help="executed notebooks (default outputs/notebooks/<profile>)")
    parser.add_argument("--output", type=Path, help="site folder (default outputs/site/<profile>)")
    args = parser.parse_args(argv)
    home = kit_home()
    index = build_site(args.executed or home / "outputs" / "notebooks" / args.profile,
                       args.output or home / "outputs" / "site" / args.profile, home)
    print(f"site written: {index} (open it in a browser; it needs no network)")
    return index


if __name__ == "__main__":
    main()
