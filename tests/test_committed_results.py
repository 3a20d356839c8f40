"""Notebooks 05 and 06 can read the committed ablation results instead of training (``use_committed = True``)."""
from __future__ import annotations

import pytest

from medseg_core import experiments as ex
from medseg_core.config import get_profile
from medseg_core.provenance import committed_manifest

# The columns the notebooks' downstream cells read from the per-case table.
NEEDED = {
    ex.ECA_ABLATION.name: {"id", "variant", "seed", "parameters", "train_seconds", "dice", "iou", "precision", "recall"},
    ex.WINDOW_LENGTH_ABLATION.name: {"id", "variant", "seed", "parameters", "train_seconds", "level", "window_length",
                                      "dice", "cldice", "iou", "precision", "recall", "hd95"},
}
GRIDS = [ex.ECA_ABLATION, ex.WINDOW_LENGTH_ABLATION]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.name)
def test_committed_results_have_what_the_notebooks_need(grid):
    path = committed_manifest().parent / f"{grid.name}_cases.csv"
    if not path.is_file():
        pytest.skip(f"no committed results at {path}")
    results = ex.read_committed_results(grid)
    assert NEEDED[grid.name] <= set(results.columns)
    assert set(results["variant"]) == set(grid.variants_for(get_profile("cpu")))  # the committed run is cpu
    assert results["id"].map(type).eq(str).all()  # ids like 003_1_001 stay text
    per_run = results.groupby(["variant", "seed"])["id"].nunique()
    assert per_run.nunique() == 1  # every variant and seed scored the same number of test cases
    assert results.equals(ex.read_committed_results(grid.name))


def test_missing_committed_results_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"ablation_eca_cases\.csv.*make reproduce"):
        ex.read_committed_results(ex.ECA_ABLATION)


@pytest.mark.notebooks
@pytest.mark.parametrize("stem", ["05_ablation_eca", "06_ablation_window_length"])
def test_ablation_notebook_runs_from_committed_results(stem, tmp_path, monkeypatch):
    """With use_committed=True the notebook trains nothing: every downstream cell runs on the committed table."""
    if not (committed_manifest().parent / f"{stem[3:]}_cases.csv").is_file():
        pytest.skip("no committed results")
    from medseg_core.notebooks import run_notebooks

    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    run_notebooks("smoke", tmp_path / "executed", only=[stem], parameters={"use_committed": True}, progress=False)
    assert not any((tmp_path / "runs").rglob("*.pt")), "use_committed=True must not train"
    assert (tmp_path / "runs" / "committed_results" / "manifest.csv").is_file()
