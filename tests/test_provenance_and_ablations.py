"""Figure manifest and its check, ablation grids and run reuse, model costs, and the ablation plots."""
from __future__ import annotations

from medseg_core.tasks import get_task

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from medseg_core import experiments as ex  # noqa: E402
from medseg_core import provenance, viz  # noqa: E402
from medseg_core.config import get_profile  # noqa: E402
from medseg_core.errors import UnknownNameError  # noqa: E402
from medseg_core.models import create_model  # noqa: E402
from medseg_core.models import summary  # noqa: E402
from medseg_core.models.summary import count_parameters  # noqa: E402
from medseg_core.run_folder import RunFolder  # noqa: E402
from medseg_core.stats import paired_comparison  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _grid(variants=("none", "skip", "both"), seeds=(0, 1), cases=5, levels=None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"variant": v, "seed": s, "id": f"c{i}", "dice": rng.uniform(0.4, 0.8), "iou": rng.uniform(0.2, 0.6),
             "cldice": rng.uniform(0.4, 0.8)}
            for v in variants for s in seeds for i in range(cases)]
    table = pd.DataFrame(rows)
    if levels is not None:
        table["level"] = table["variant"].map(levels)
    return table


# ------------------------------------------------------------------------------------------------ manifest
def test_writer_records_every_file_once_with_provenance(tmp_path):
    writer = provenance.FigureWriter(tmp_path / "figs", "05_ablation_eca", "smoke", seeds=(0, 1))
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = writer.save_figure(fig, "chart", source="runs/x")
    csv = writer.save_table(pd.DataFrame({"a": [1, 2]}), "table", seeds=[3])
    writer.save_figure(fig, "chart")  # saving again replaces the row
    manifest = provenance.read_manifest(tmp_path / "figs")
    assert png.is_file() and csv.is_file()
    assert sorted(manifest["file"]) == ["chart.png", "table.csv"]
    assert list(manifest.columns) == list(provenance.MANIFEST_COLUMNS)
    rows = manifest.set_index("file")
    assert rows.loc["chart.png", "seeds"] == "0 1" and rows.loc["table.csv", "seeds"] == "3"
    assert rows.loc["chart.png", "kind"] == "figure" and rows.loc["table.csv", "kind"] == "table"
    assert rows.loc["chart.png", "torch"] == torch.__version__
    commit = rows.loc["chart.png", "commit"]
    assert commit == "unknown" or (len(commit) == 40 and all(c in "0123456789abcdef" for c in commit))
    assert pd.read_csv(csv)["a"].tolist() == [1, 2]


def test_check_figures_against_a_committed_manifest(tmp_path):
    committed = tmp_path / "committed"
    writer = provenance.FigureWriter(committed, "07_reproduce_figures", "cpu")
    for name in ("a", "b"):
        fig, _ = plt.subplots()
        writer.save_figure(fig, name)
    provenance.FigureWriter(committed, "05_ablation_eca", "cpu").save_table(pd.DataFrame({"x": [1]}), "c")
    ci_output = tmp_path / "ci"
    ci_writer = provenance.FigureWriter(ci_output, "07_reproduce_figures", "smoke")
    fig, _ = plt.subplots()
    ci_writer.save_figure(fig, "a")
    with pytest.raises(FileNotFoundError, match=r"missing.*'b\.png'"):
        provenance.check_figures(ci_output, committed / provenance.MANIFEST_NAME, notebooks=["07_reproduce_figures"])
    ci_writer.save_figure(fig, "b")
    checked = provenance.check_figures(ci_output, committed, notebooks=["07_reproduce_figures"])
    assert sorted(checked["file"]) == ["a.png", "b.png"]
    with pytest.raises(FileNotFoundError, match="c.csv"):
        provenance.check_figures(ci_output, committed)
    with pytest.raises(FileNotFoundError, match="no figure manifest"):
        provenance.read_manifest(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------- grids, reuse
def test_ablation_profile_applies_the_budget_in_its_own_folders():
    cpu = get_profile("cpu")
    budget = cpu.ablation_profile()
    for key, value in cpu.ablation.overrides.items():
        section, name = key.split(".")
        assert getattr(getattr(budget, section), name) == value
    assert budget.name == "cpu_ablation" and get_task("xca").data_dir(budget) != get_task("xca").data_dir(cpu)
    assert ex.ECA_ABLATION.results_dir(cpu) == budget.run_dir("ablation_eca")
    paper = get_profile("paper")
    assert paper.ablation_profile().name == "paper" and len(paper.ablation.seeds) == 5
    assert len(get_profile("smoke").ablation.seeds) == 1 and len(cpu.ablation.seeds) >= 3
    assert get_profile("cpu", {"ablation.seeds": [4, 5]}).ablation.seeds == (4, 5)


def test_grids_hold_the_issue_variants_and_a_size_matched_unet():
    assert list(ex.ECA_ABLATION.variants) == ["none", "skip", "aspp", "both", "unet", "intensity"]
    assert ex.ECA_ABLATION.baseline == "intensity"
    assert ex.WINDOW_LENGTHS == (1, 2, 3, 4, 5, 7)
    assert {spec["overrides"]["xca.window_length"] for name, spec in ex.WINDOW_LENGTH_ABLATION.variants.items()
            if name not in ("unet2d", "tophat")} == set(ex.WINDOW_LENGTHS)
    grid = ex.WINDOW_LENGTH_ABLATION
    assert grid.baseline == "tophat" and grid.variants["tophat"]["model_name"] == "tophat"
    assert list(grid.variants_for(get_profile("paper"))) == list(grid.variants)  # paper: every window length
    assert list(grid.variants_for(get_profile("cpu"))) == ["T1", "T4", "T7", "unet2d", "tophat"]
    chosen = get_profile("cpu", {"ablation.grid_variants": {grid.name: ["T4", "T1"]}})
    assert list(grid.variants_for(chosen)) == ["T1", "T4", "tophat"]  # the grid's order; the baseline always
    for wrong, message in ((["T1", "T9"], r"unknown variants \['T9'\]"), (["T4"], "the reference 'T1' is left out")):
        with pytest.raises(UnknownNameError, match=message):
            grid.variants_for(get_profile("cpu", {"ablation.grid_variants": {grid.name: wrong}}))
    unet = create_model("unet2d", in_channels=3, num_classes=2, **ex.ECA_ABLATION.variants["unet"]["model_kwargs"])
    deeplab = create_model("deeplabv3plus", num_classes=2, eca="none")
    assert abs(count_parameters(unet) / count_parameters(deeplab) - 1) < 0.05


def test_seeds_on_disk_needs_every_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path))
    profile = get_profile("smoke")
    folder = ex.ECA_ABLATION.results_dir(profile)
    folder.mkdir(parents=True)
    assert ex.ECA_ABLATION.seeds_on_disk(profile) == []
    def finish(variant: str, seed: int) -> None:
        run_dir = ex.ECA_ABLATION.run_dir(profile, variant, seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        RunFolder(run_dir).results.write_text("id\n")

    for variant in ex.ECA_ABLATION.variants:
        for seed in (0, 2):
            finish(variant, seed)
    finish("none", 1)
    assert ex.ECA_ABLATION.seeds_on_disk(profile) == [0, 2]
    assert ex.ECA_ABLATION.run_dir(profile, "none", 1).parent == folder


def test_run_sources_are_finished_once_their_results_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path))
    profile = get_profile("smoke", {"svsnet.epochs": 2})
    sources = ex.svsnet_sources(profile, seed=0)
    assert [s.notebook for s in sources] == ["02_train_svsnet", "06_ablation_window_length"]
    assert sources[0].run_dir == profile.run_dir("xca_svsnet_T4-centre_seed0")  # notebooks 00 and 02 share it
    assert sources[-1].run_dir == ex.WINDOW_LENGTH_ABLATION.results_dir(profile) / "xca_svsnet_T4-centre_seed0"
    first, folder = sources[0], RunFolder(sources[0].run_dir)
    assert not first.is_finished()
    folder.path.mkdir(parents=True)
    folder.best.write_bytes(b"")
    pd.DataFrame({"epoch": [1, 2]}).to_csv(folder.history, index=False)
    assert not first.is_finished()  # trained, not tested: the one rule of RunFolder.is_finished
    folder.write_results(pd.DataFrame({"id": ["a"], "dice": [1.0]}), variant="T4", seed=0, parameters=1,
                         train_seconds=1.0)
    assert first.is_finished()
    assert first.spec.folder == folder and first.spec.name == "xca_svsnet_T4-centre_seed0"
    assert [s.notebook for s in ex.deeplab_sources(profile)] == ["04_train_deeplabv3plus_eca", "05_ablation_eca"]
    with pytest.raises(ValueError, match="no run sources"):
        ex.reuse_or_train([])


# --------------------------------------------------------------------------------------------------- costs
def test_flops_of_a_convolution_match_the_formula():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    assert summary.count_flops(conv, torch.rand(1, 3, 16, 16)) == 2 * 3 * 8 * 9 * 16 * 16


def test_architecture_table_and_latency():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    table = summary.architecture_table({"tiny": (model, (1, 1, 8, 8))}, repeats=2)
    row = table.iloc[0]
    assert row["parameters"] == count_parameters(model) and row["input"] == "1×1×8×8"
    assert row["gflops"] == pytest.approx(2 * 4 * 9 * 64 / 1e9) and row["latency_ms"] > 0
    assert model.training  # the mode is restored
    with pytest.raises(ValueError, match="repeats"):
        summary.measure_latency(model, torch.rand(1, 1, 8, 8), repeats=0)


def test_kit_architectures_use_the_profile_sizes():
    profile = get_profile("smoke")
    shapes = {name: shape for name, (_, shape) in ex.kit_architectures(profile).items()}
    assert shapes[f"SVSnet, T = {profile.xca.window_length}"][-1] == profile.xca.image_size
    assert shapes["DeepLabV3+, ECA both"] == (1, 3, profile.oct.image_size, profile.oct.image_size)


# --------------------------------------------------------------------------------------------------- plots
def test_ablation_plots_draw_one_panel_per_metric_in_the_given_order():
    results = _grid()
    fig = viz.plot_ablation(results, ("dice", "iou"), order=["both", "skip", "none"], reference="none")
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["both", "skip", "none"]
    fig = viz.plot_paired_differences(paired_comparison(results, "none", ["dice", "iou"]))
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["skip", "both"]
    assert all(ax.yaxis_inverted() for ax in fig.axes)  # the first variant on top in every panel
    fig = viz.plot_metric_boxes(results, ("dice", "iou"), order=["none", "both"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Dice", "IoU"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["none (n = 5)", "both (n = 5)"]


def test_window_length_curve_and_costs():
    levels = {"T1": 1, "T2": 2, "T4": 4}
    results = _grid(("T1", "T2", "T4", "unet2d"), levels=levels)
    fig = viz.plot_window_length_curve(results, ("dice", "cldice"), baseline="unet2d")
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(fig.axes[0].get_xticks(), [1, 2, 4])
    costs = pd.DataFrame({"model": ["T1", "T2", "unet2d"], "parameters": [1e6, 2e6, 3e6], "gflops": [1.0, 2.0, 3.0],
                          "latency_ms": [5.0, 9.0, 4.0]})
    costs["window_length"] = costs["model"].map(levels)
    fig = viz.plot_cost_curve(costs.dropna(), baseline=costs.iloc[2], baseline_name="U-Net")
    assert len(fig.axes) == 3
    assert viz.plot_table(costs, formats={"gflops": ".2f"}).axes


def test_compare_tables_flags_moved_and_missing_tables(tmp_path):
    committed = tmp_path / "committed"
    writer = provenance.FigureWriter(committed, "05_ablation_eca", "cpu", seeds=(0, 1))
    table = pd.DataFrame({"variant": ["none", "none", "both"], "seed": [0, 1, 0], "dice": [0.5, 0.6, 0.7],
                          "train_seconds": [10.0, 11.0, 12.0]})
    writer.save_table(table, "grid")
    writer.save_table(table.head(1), "other")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    table.assign(dice=[0.5, 0.6, 0.75], train_seconds=[99.0, 1.0, 5.0]).to_csv(fresh / "grid.csv", index=False)
    result = provenance.compare_tables(fresh, committed, tolerance=0.02).set_index(["table", "column"])
    assert result.loc[("grid.csv", "dice"), "max_abs_difference"] == pytest.approx(0.05)
    assert not result.loc[("grid.csv", "dice"), "within"]
    assert ("grid.csv", "train_seconds") not in result.index  # timings measure the machine
    assert not result.loc[("other.csv", "(missing)"), "within"]
    assert provenance.compare_tables(fresh, committed, tolerance=0.06).loc[0, "within"]


def test_compare_tables_compares_flags_and_ignores_per_seed_text(tmp_path):
    """A rerun that flips an hd95 failure and rewrites per_seed is compared column by column, not "rows differ"."""
    committed = tmp_path / "committed"
    writer = provenance.FigureWriter(committed, "06_ablation_window_length", "cpu", seeds=(0, 1))
    table = pd.DataFrame({"variant": ["T1", "T4"], "dice": [0.40, 0.55], "per_seed": ["0: 0.40", "0: 0.55"],
                          "hd95_failed": [False, False]})
    writer.save_table(table, "summary")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    table.assign(dice=[0.41, 0.55], per_seed=["0: 0.41", "0: 0.55"], hd95_failed=[False, True]).to_csv(
        fresh / "summary.csv", index=False)
    result = provenance.compare_tables(fresh, committed).set_index("column")
    assert list(result.index) == ["dice", "hd95_failed"]
    assert result.loc["dice", "within"] and not result.loc["hd95_failed", "within"]
    assert result.loc["hd95_failed", "max_abs_difference"] == 1.0


def test_compare_tables_matches_rows_named_by_a_number_of_training_frames(tmp_path):
    """Notebook 09's tables name rows by start and train_frames: an identical rerun is within, not "rows differ"."""
    committed = tmp_path / "committed"
    writer = provenance.FigureWriter(committed, "09_synthetic_to_real", "cpu", seeds=(0,))
    table = pd.DataFrame({"start": ["scratch", "synthetic", "scratch", "synthetic"], "train_frames": [16, 16, 64, 64],
                          "dice": [0.1, 0.2, 0.3, float("nan")]})
    writer.save_table(table, "curve")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    table.to_csv(fresh / "curve.csv", index=False)
    result = provenance.compare_tables(fresh, committed)
    assert result["column"].tolist() == ["dice"] and result["within"].all()


def test_transfer_runs_get_equal_steps_and_about_equal_validations_whatever_the_number_of_frames():
    transfer = get_profile("cpu").transfer
    for frames in (16, 36, 40, 64, 70):
        budget = ex.transfer_budget(frames, 4, transfer)
        epochs, every = budget["deeplab.epochs"], budget["deeplab.val_every"]
        assert transfer.steps <= epochs * (frames // 4) < transfer.steps + frames // 4  # the last epoch may run over
        validated = len({*range(every, epochs + 1, every), epochs})  # every val_every-th epoch and the last
        assert transfer.validations // 2 < validated <= transfer.validations, (frames, budget)
    assert ex.transfer_budget(16, 4, transfer) == {"oct.train_frames": 16, "deeplab.epochs": 40, "deeplab.val_every": 4}
    assert ex.transfer_budget(3, 4, transfer)["deeplab.epochs"] == transfer.steps  # one step an epoch
