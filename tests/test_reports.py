"""Prose numbers come from their tables: generated blocks stay in step, notebooks state no run time by hand."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from medseg_core import reports
from medseg_core.errors import DataError
from medseg_core.notebooks import TIMES_FILE, list_notebooks, write_times
from medseg_core.provenance import committed_manifest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = committed_manifest().parent
MARKDOWN = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_run_times_block_is_rendered_from_the_times_table_and_a_changed_number_is_found(tmp_path):
    write_times(tmp_path, "cpu", "00_quickstart", 120.04)
    write_times(tmp_path, "cpu", "01_xca_sequences", 30.0)
    write_times(tmp_path, "cpu", "00_quickstart", 100.0)  # a rerun replaces its row
    times = pd.read_csv(tmp_path / TIMES_FILE)
    assert times["notebook"].tolist() == ["00_quickstart", "01_xca_sequences"] and times["seconds"].tolist() == [100.0, 30.0]
    text = "intro\n<!-- generated: run_times -->\nold numbers\n<!-- end generated -->\nafter\n"
    assert reports.stale_blocks(text, tmp_path) == ["run_times"]
    fresh = reports.render(text, tmp_path)
    assert "| **all** | **130** | **2.2** |" in fresh and fresh.startswith("intro\n") and fresh.endswith("after\n")
    assert reports.stale_blocks(fresh, tmp_path) == []
    assert reports.stale_blocks(fresh.replace("**130**", "**129**"), tmp_path) == ["run_times"]
    assert reports.committed_time("00_quickstart", tmp_path)["seconds"].tolist() == [100.0]


def test_unknown_section_and_missing_table_are_named(tmp_path):
    with pytest.raises(KeyError, match="valid names: run_times"):
        reports.section("results", tmp_path)
    with pytest.raises(DataError, match=TIMES_FILE):
        reports.section("run_times", tmp_path)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.name)
def test_generated_blocks_match_the_committed_tables(path):
    """A number in a generated block of the README or docs/ that differs from its CSV fails here: rerun
    `medseg report README.md docs/*.md` after `make reproduce`."""
    text = path.read_text(encoding="utf-8")
    if "<!-- generated:" not in text:
        pytest.skip(f"{path.name} has no generated block")
    assert reports.stale_blocks(text, FIGURES) == []


def test_notebooks_state_no_cpu_run_time_by_hand():
    """cpu run times live in figures/notebook_times.csv; a notebook reads them (reports.committed_time)."""
    time_words = re.compile(r"\b\d+(\.\d+)? ?(s|min|minutes|seconds)\b")
    for notebook in list_notebooks():
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for line in cell.source.splitlines():
                assert not (line.startswith("| `cpu`") and time_words.search(line)), f"{notebook.name}: {line}"
