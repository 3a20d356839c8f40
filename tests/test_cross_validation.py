"""`medseg cv --task oct` on a fixture in the released OCT dataset's fold layout (fold_k/{train,test}/{img,mask})."""
from __future__ import annotations

import pandas as pd
import pytest

from medseg_core.cli import main
from medseg_core.data.synthetic_oct import write_oct_dataset


@pytest.fixture()
def folds_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    root = tmp_path / "oct_folds"
    write_oct_dataset(root, num_patients=6, frames_per_patient=2, seed=0, size=64, layout="folds", num_folds=3)
    return root


def test_cv_trains_one_model_per_released_fold_and_sets_published_numbers_beside(folds_root, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", "--task", "oct", "--data", str(folds_root), "--folds", "3", "--profile", "smoke",
                 "--out", str(out)]) == 0
    frames = pd.read_csv(out / "cv_frames.csv", dtype={"cluster": str})
    assert sorted(frames["fold"].unique()) == [1, 2, 3]
    assert frames.groupby("cluster")["fold"].nunique().eq(1).all()  # each patient is tested in one fold only
    assert frames["cluster"].nunique() == 6 and all((out / f"fold{k}" / "best.pt").is_file() for k in (1, 2, 3))
    folds = pd.read_csv(out / "cv_folds.csv")
    summary = pd.read_csv(out / "cv_summary.csv").set_index("class")
    assert summary.at["lipid_core", "folds"] == 3 and summary.at["lipid_core", "published_dice"] == 0.751
    assert summary.at["lipid_core", "dice_mean_of_folds"] == pytest.approx(folds["dice"].mean())
    assert "published lipid_core Dice: 0.751" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["--folds", "4"], "holds 3 folds"),
    (["--task", "xca"], "task 'xca' has none"),
    (["--folds", "1"], "at least 2"),
])
def test_cv_user_errors_are_one_line(folds_root, capsys, argv, message):
    assert main(["cv", "--data", str(folds_root), "--profile", "smoke", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and message in err and err.count("\n") == 1, err


def test_cv_refuses_the_flat_layout(tmp_path, capsys):
    root = tmp_path / "flat"
    write_oct_dataset(root, num_patients=3, frames_per_patient=2, seed=0, size=64)
    assert main(["cv", "--data", str(root), "--profile", "smoke", "--out", str(tmp_path / "cv")]) == 2
    assert "not in the fold layout" in capsys.readouterr().err
