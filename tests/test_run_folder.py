"""A run has one home: RunFolder names its files, decides "finished", writes the results in one schema atomically
and refuses a finished run trained with other settings; RunSpec resolves a run once."""
from __future__ import annotations

import ast
import json
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from medseg_core import run_folder
from medseg_core.checkpoints import RunMetadata, save_checkpoint
from medseg_core.config import TrainConfig, get_profile
from medseg_core.errors import ConfigError
from medseg_core.experiments import RunSpec
from medseg_core.run_folder import RESULT_COLUMNS, RunFolder

ROOT = Path(__file__).resolve().parents[1]
FILE_NAMES = (run_folder.BEST_FILE, run_folder.LAST_FILE, run_folder.HISTORY_FILE, run_folder.RESULTS_FILE,
              run_folder.CONFIG_FILE)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the strings that stand alone as statements: docstrings of modules, classes, functions and attributes
    (prose, like comments)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}


def _file_names_in_code(source: str) -> list[str]:
    """The file-name literals in the strings of ``source`` (f-string parts included; docstrings and comments not)."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    return [name for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in prose for name in FILE_NAMES if name in node.value]


def test_the_checker_finds_literals_in_code_and_leaves_prose_alone():
    assert _file_names_in_code('def f():\n    """Reads best.pt."""\n    return "runs/x/best.pt"  # last.pt\n') == [
        "best.pt"]
    assert _file_names_in_code('x = f"{run}/test_metrics.csv"') == ["test_metrics.csv"]


def test_run_file_names_are_written_only_in_the_run_folder_module():
    """Every run path and file name goes through RunFolder: no string in the library's code or a notebook's code
    cells names a run file (docstrings, comments and markdown may)."""
    import nbformat

    found = {}
    for path in sorted((ROOT / "medseg_core").rglob("*.py")):
        if path.name != "run_folder.py" or path.parent.name != "medseg_core":
            names = _file_names_in_code(path.read_text(encoding="utf-8"))
            if names:
                found[str(path.relative_to(ROOT))] = names
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
                names = _file_names_in_code(code)
                if names:
                    found[f"{path.name} cell {index}"] = names
    assert not found, f"run file names outside medseg_core/run_folder.py (use RunFolder): {found}"


def _cases(ids=("001_1_0001", "002_1_0001")) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids), "cluster": [i[:3] for i in ids], "class": "lipid_core", "dice": [0.5, 1.0]})


def test_finished_means_the_results_file_exists(tmp_path):
    folder = RunFolder(tmp_path / "run")
    assert not folder.is_finished()
    folder.path.mkdir()
    folder.best.write_bytes(b"weights")
    folder.write_history(pd.DataFrame({"epoch": [1, 2]}))
    assert not folder.is_finished(), "trained but not tested: not finished"
    folder.write_results(_cases(), variant="both", seed=0, parameters=10, train_seconds=1.0)
    assert folder.is_finished()


def test_results_have_one_schema_and_read_back_as_written(tmp_path):
    folder = RunFolder(tmp_path)
    table = folder.write_results(_cases(), variant="both", seed=3, parameters=12, train_seconds=4.56)
    assert list(table.columns) == [*_cases().columns, *RESULT_COLUMNS]
    back = folder.read_results()
    assert back["id"].tolist() == ["001_1_0001", "002_1_0001"] and back["cluster"].tolist() == ["001", "002"]
    pd.testing.assert_frame_equal(back, table)
    assert back["train_seconds"].tolist() == [4.6, 4.6] and back["seed"].tolist() == [3, 3]


def test_results_write_is_atomic_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path)
    folder.write_results(_cases(), variant="both", seed=0, parameters=1, train_seconds=1.0)
    before = folder.results.read_bytes()

    def broken(self, path, *args, **kwargs):
        Path(path).write_text("id,clus")  # half a file, then the writer dies
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        folder.write_results(_cases(("003_1_0001", "004_1_0001")), variant="both", seed=1, parameters=1,
                             train_seconds=1.0)
    assert folder.results.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.results.name]


def test_config_write_is_indented_json(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_config({"task": "oct", "seed": 1})
    assert json.loads(folder.config.read_text()) == {"task": "oct", "seed": 1}
    assert folder.config.read_text().startswith("{\n  ")


def _finished_run(folder: RunFolder, config: TrainConfig, metadata: RunMetadata) -> None:
    folder.path.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder.best, {"model": {"w": torch.zeros(1)}, "config": asdict(config),
                                  "metadata": metadata.to_dict()})
    folder.write_results(_cases(), variant="run", seed=config.seed, parameters=1, train_seconds=1.0)


def test_a_finished_run_trained_with_other_settings_is_refused_naming_the_change(tmp_path):
    profile = get_profile("smoke")
    spec = RunSpec.resolve("oct", profile, seed=1, run_dir=tmp_path / "run")
    _finished_run(spec.folder, replace(spec.train_config, lr=0.5), spec.metadata())
    with pytest.raises(ConfigError, match=r"trained with other settings \(lr: stored 0.5, now 0.001\)"):
        spec.check_finished()
    speed_only = RunSpec.resolve("oct", profile, seed=1, run_dir=tmp_path / "speed")
    _finished_run(speed_only.folder, replace(speed_only.train_config, num_threads=1), speed_only.metadata())
    speed_only.check_finished()  # speed settings do not change results
    longer = RunSpec.resolve("oct", profile.override({"deeplab.epochs": 2}), seed=1, run_dir=tmp_path / "speed")
    with pytest.raises(ConfigError, match="epochs: stored 1, now 2"):
        longer.check_finished()


def test_run_spec_resolves_the_run_once():
    profile = get_profile("smoke")
    spec = RunSpec.resolve("oct", profile, model_args={"eca": "none"}, seed=1)
    assert spec.name == "oct_deeplabv3plus_eca-none_seed1"
    assert spec.folder.path == profile.run_dir(spec.name)
    assert spec.model_kwargs["eca"] == "none" and spec.model_kwargs["num_classes"] == 1 + len(profile.oct.classes)
    assert spec.train_config.seed == 1 and spec.metadata().task == "oct"
    grid = RunSpec.resolve("oct", profile, seed=0, results_dir=Path("grid"), subfolder="scratch_n4")
    assert grid.folder.path == Path("grid", "scratch_n4", "oct_deeplabv3plus_seed0")
