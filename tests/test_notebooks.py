"""Every numbered notebook runs headless with papermill in the smoke profile, and is committed clean."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medseg_core.cli import main
from medseg_core.notebooks import NotebookError, list_notebooks, run_notebooks
from medseg_core.provenance import check_figures, committed_manifest

NOTEBOOKS = list_notebooks()
# The notebooks that build their own Trainer: their checkpoints must work with `medseg predict` as they are.
PREDICT_INPUTS = {"02_train_svsnet": ("xca_svsnet_*", "xca_*/test"), "04_train_deeplabv3plus_eca": ("oct_deeplabv3plus_*",
                                                                                                    "oct_*/**/img")}


def test_notebooks_are_numbered_and_present():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems[:3] == ["00_quickstart", "01_xca_sequences", "02_train_svsnet"]
    assert [s[:2] for s in stems] == sorted(s[:2] for s in stems)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs_and_has_parameters_cell(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip outputs (make strip)"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "profile" in "".join(tagged[0]["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(notebook):
    """`papermill --help-notebook` lists every parameter (an '=' in a comment hides it from papermill's parser)."""
    import nbformat
    from papermill.translators import PythonTranslator

    cell = next(c for c in nbformat.read(notebook, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assigned = re.findall(r"^(\w+)\s*=", cell.source, flags=re.MULTILINE)
    assert [parameter.name for parameter in PythonTranslator.inspect(cell)] == assigned


@pytest.mark.notebooks
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    table = run_notebooks("smoke", tmp_path / "executed", only=[notebook.stem], progress=False)
    executed = json.loads((tmp_path / "executed" / notebook.name).read_text())
    assert table["notebook"].tolist() == [notebook.name]
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")
    if committed_manifest().is_file():  # every figure and table the committed cpu run lists for this notebook
        check_figures(tmp_path / "executed" / "figures", notebooks=[notebook.stem])
    if notebook.stem in PREDICT_INPUTS:
        run_pattern, input_pattern = PREDICT_INPUTS[notebook.stem]
        checkpoint = next((tmp_path / "runs" / "smoke").glob(f"{run_pattern}/best.pt"))
        inputs = next((tmp_path / "data" / "synthetic").glob(input_pattern))
        assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs),
                     "--output", str(tmp_path / "predicted")]) == 0
        assert len(list((tmp_path / "predicted" / "masks").rglob("*.png"))) > 0


def test_runner_names_the_failing_notebook_and_cell(tmp_path):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    parameters = nbformat.v4.new_code_cell('profile = "cpu"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(notebook, folder / "00_broken.ipynb")
    nbformat.write(notebook, folder / "01_never_runs.ipynb")
    with pytest.raises(NotebookError, match=r"00_broken.ipynb failed in cell \d+.*ZeroDivisionError"):
        run_notebooks("smoke", tmp_path / "out", notebook_dir=folder, progress=False)
    assert not (tmp_path / "out" / "01_never_runs.ipynb").exists()


def test_every_figure_has_one_owner_notebook():
    """Each file of figures/ is written by exactly one notebook (a second writer would overwrite it silently)."""
    from medseg_core.notebooks import figure_writers

    writers = figure_writers()
    assert len(writers) > 20 and not writers["dynamic"].any()  # every file name is readable from the code
    owners = writers.groupby("file")["notebook"].unique()
    shared = {name: list(notebooks) for name, notebooks in owners.items() if len(notebooks) > 1}
    assert not shared, f"files written by several notebooks: {shared}"


@pytest.mark.notebooks
def test_notebook_04_with_seed_1_tests_on_the_cli_runs_patients(tmp_path, monkeypatch):
    """Notebook 04 builds its loaders through the task (the fixed patient split of oct.seed), so a seed-1 run tests
    on the same patients as `medseg train --task oct --seed 1` and its run can be re-evaluated by other notebooks."""
    import pandas as pd

    from medseg_core.cli import main
    from medseg_core.notebooks import run_notebooks

    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    run_notebooks("smoke", tmp_path / "executed", only=["04"], parameters={"seed": 1}, progress=False)
    (notebook_run,) = (tmp_path / "runs").rglob("oct_deeplabv3plus*seed1/test_metrics.csv")
    assert main(["train", "--task", "oct", "--profile", "smoke", "--seed", "1", "--out", str(tmp_path / "cli")]) == 0
    cli_ids = set(pd.read_csv(tmp_path / "cli" / "test_metrics.csv", dtype={"id": str})["id"])
    assert set(pd.read_csv(notebook_run, dtype={"id": str})["id"]) == cli_ids
