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


def _runs_before(track: str, index: int) -> set[str]:
    """Notebook numbers whose cpu runs exist before step ``index`` of ``track``: earlier steps and earlier tracks."""
    steps = [s for after in reports.TRACKS[track]["after"] for s in reports.TRACKS[after]["steps"]]
    steps += list(reports.TRACKS[track]["steps"][:index])
    return {s.notebook[:2] for s in steps if not s.use_committed}


@pytest.mark.parametrize("track", reports.TRACKS)
def test_each_lab_track_fits_90_minutes_of_learner_and_of_compute_time(track):
    plan = reports.track_minutes(track, FIGURES)
    hint = (f"the {track} track takes {plan['end'].iloc[-1]} minutes (learner {plan['learner'].sum():.0f}, compute "
            f"{plan['compute'].sum():.1f}): move a step out of reports.TRACKS, then `medseg report README.md`")
    assert plan["end"].iloc[-1] <= 90, hint
    assert plan["learner"].sum() <= 90 and plan["compute"].sum() <= 90, hint
    assert (plan["end"] - plan["start"] >= plan[["learner", "compute"]].max(axis=1)).all()


@pytest.mark.parametrize("track", reports.TRACKS)
def test_each_lab_track_respects_the_notebooks_prerequisites_and_trains_models_that_learn(track):
    """A notebook comes after every notebook its "Prerequisites" paragraph names (in this track or one it follows);
    a reused run was made earlier; no step runs the smoke profile, whose models barely learn."""
    definition = reports.TRACKS[track]
    earlier = {s.notebook[:2] for after in definition["after"] for s in reports.TRACKS[after]["steps"]}
    for index, step in enumerate(definition["steps"]):
        missing = reports.prerequisites(step.notebook) - earlier
        assert not missing, f"{track}: {step.notebook} comes before its prerequisites {sorted(missing)}"
        assert set(step.reuses) <= _runs_before(track, index), f"{track}: {step.notebook} reuses a run not made yet"
        assert step.use_committed or step.profile == "cpu", f"{track}: {step.notebook} in {step.profile}"
        earlier.add(step.notebook[:2])


@pytest.mark.parametrize("track", [t for t, d in reports.TRACKS.items()
                                   if any(s.notebook.startswith("08") for s in d["steps"])])
def test_the_explorers_run_after_the_runs_they_reuse_or_train_the_missing_pair(track):
    """Notebook 08 reuses the runs of 00, 04 and 05; where 05 read committed results, 08 trains 05's ECA pair and the
    plan counts that training."""
    steps = reports.TRACKS[track]["steps"]
    index = next(i for i, s in enumerate(steps) if s.notebook.startswith("08"))
    before = _runs_before(track, index)
    assert {"00", "04"} <= before
    row = reports.track_minutes(track, FIGURES).iloc[index]
    measured = reports.committed_time(steps[index].notebook, FIGURES)["seconds"].iloc[0] / 60
    assert row["trains_eca_pair"] == ("05" not in before)
    assert (row["compute"] > measured) == row["trains_eca_pair"]


def test_prerequisites_are_read_from_the_notebooks_text_ranges_included():
    assert reports.prerequisites("00_quickstart") == set()
    assert reports.prerequisites("04_train_deeplabv3plus_eca") == {"02", "03"}
    assert reports.prerequisites("07_reproduce_figures") == {f"{n:02d}" for n in range(7)}
    assert reports.prerequisites("08_explorers") == {"00", "04"}


def test_learner_minutes_count_words_and_exercises(tmp_path, monkeypatch):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(" ".join(["word"] * 350)),
                                         nbformat.v4.new_code_cell('check("a", 1)\ncheck(\'b\', 2)\nprint(1)')])
    nbformat.write(nb, notebooks / "00_test.ipynb")
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    assert reports.learner_minutes("00_test") == pytest.approx(350 / reports.READING_WORDS_PER_MINUTE
                                                              + 2 * reports.MINUTES_PER_EXERCISE)
