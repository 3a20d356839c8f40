"""Pictures of results: training curves, threshold sweeps, per-case scores, confusion matrices, attention
weights, and the ablation plots (metric means with intervals, paired differences, per-case boxes, curves
against the window length, model costs, tables as figures), and the fine-tuning curve against the number of
training frames.

Plots use seaborn/matplotlib with labelled axes and units so that they read in print; each returns its figure.
Statistics come from :mod:`medseg_core.stats`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from ..metrics import UNIT_INTERVAL_METRICS
from ..stats import summarize_runs

__all__ = [
    "plot_history",
    "plot_threshold_sweep",
    "plot_patient_split",
    "plot_case_scores",
    "plot_confusion",
    "plot_attention_weights",
    "plot_table",
    "plot_ablation",
    "plot_paired_differences",
    "plot_metric_boxes",
    "plot_window_length_curve",
    "plot_cost_curve",
    "plot_transfer_curve",
]

_BOUNDED_METRICS = UNIT_INTERVAL_METRICS


def plot_history(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Training curves: loss (train/validation) and validation Dice per epoch."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    losses = history.melt("epoch", [c for c in ("train_loss", "val_loss") if c in history], "split", "loss")
    sns.lineplot(losses, x="epoch", y="loss", hue="split", marker="o", ax=loss_ax)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if "val_dice" in history:
        sns.lineplot(history, x="epoch", y="val_dice", marker="o", ax=dice_ax, color="C2")
        dice_ax.set(xlabel="epoch", ylabel="Dice", title="validation Dice", ylim=(0, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_threshold_sweep(sweep: pd.DataFrame, title: str = "") -> plt.Figure:
    """Precision-recall curve and Dice vs threshold from :func:`medseg_core.evaluation.threshold_sweep`."""
    fig, (pr_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.lineplot(sweep, x="recall", y="precision", marker="o", sort=False, ax=pr_ax)
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="precision-recall (pixels)")
    sns.lineplot(sweep, x="threshold", y="dice", marker="o", ax=dice_ax, color="C2")
    best = sweep.loc[sweep["dice"].idxmax()]
    dice_ax.axvline(best["threshold"], color="grey", linestyle="--", label=f"best {best['threshold']:.2f}")
    dice_ax.set(xlabel="probability threshold", ylabel="Dice", ylim=(0, 1), title="Dice vs threshold")
    dice_ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_patient_split(splits: Mapping[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """Every frame as a square at (frame number, patient), coloured by its split.

    A patient-wise split gives each row one colour; a row with two colours is a patient whose near-duplicate
    frames sit on both sides of the split (leakage).

    Args:
        splits: ``{split name: pairs}``, each with ``patient`` and ``frame`` columns (e.g. from
            :func:`medseg_core.data.oct.find_oct_pairs` and :func:`~medseg_core.data.oct.patient_split`); frames
            without a number are placed by their order within the patient.
    """
    if not splits:
        raise ValueError("no splits to plot")
    tables = []
    for name, pairs in splits.items():
        missing = {"patient", "frame"} - set(pairs.columns)
        if missing:
            raise ValueError(f"split {name!r} lacks columns {sorted(missing)}; use find_oct_pairs() tables")
        tables.append(pairs[["patient", "frame"]].assign(split=name))
    frames = pd.concat(tables, ignore_index=True)
    position = frames.groupby("patient").cumcount() + 1
    frames["frame"] = pd.to_numeric(frames["frame"]).astype(float).fillna(position.astype(float))
    frames["patient"] = frames["patient"].astype(str)
    frames = frames.sort_values(["patient", "frame"], kind="stable")  # categorical y axis in patient order
    fig, ax = plt.subplots(figsize=(7, 0.32 * frames["patient"].nunique() + 1.6))
    sns.scatterplot(frames, x="frame", y="patient", hue="split", marker="s", s=60, ax=ax,
                    hue_order=list(splits), palette="Set1")
    ax.set(xlabel="frame number in the pullback", ylabel="patient", title=title or "split by patient")
    ax.legend(title="split", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def plot_case_scores(
    results: pd.DataFrame, metric: str = "dice", group: str | None = None, title: str = ""
) -> plt.Figure:
    """One bar per case (e.g. per test frame), best first, with the mean as a dashed line.

    Args:
        results: one row per case with ``id`` and ``metric`` columns (from :func:`medseg_core.evaluation.evaluate`,
            one class).
        group: a column to colour the bars by (e.g. ``"patient"``).

    Raises:
        ValueError: a missing column, several rows per case (select one class first), or no defined values.
    """
    needed = {"id", metric} | ({group} if group else set())
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"results lack columns {sorted(missing)} (columns: {list(results.columns)})")
    if results["id"].duplicated().any():
        raise ValueError("results hold several rows per case (several classes?); select one, e.g. "
                         "results[results['class'] == 'lipid_core']")
    ranked = results.dropna(subset=[metric]).sort_values(metric, ascending=False, kind="stable")
    if ranked.empty:
        raise ValueError(f"no case has a defined {metric!r}")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.32 * len(ranked) + 2.0), 3.8))
    sns.barplot(ranked, x="id", y=metric, hue=group, dodge=False, ax=ax, palette="tab10" if group else None,
                color=None if group else "C0")
    mean = ranked[metric].mean()
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
    ax.set(xlabel="case", ylabel=metric, title=title or f"{metric} per case (n = {len(ranked)})")
    if metric in _BOUNDED_METRICS:
        ax.set_ylim(0, 1.05)
    for bars in ax.containers:  # values on the bars, so that a score of 0 is visible too
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.legend(title=group, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    skipped = len(results) - len(ranked)
    if skipped:
        ax.annotate(f"{skipped} case(s) with undefined {metric} not shown", (0, -0.45), xycoords="axes fraction",
                    fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(confusion: np.ndarray | torch.Tensor, class_names: Sequence[str], title: str = "") -> plt.Figure:
    """A pixel confusion matrix (rows = true class, columns = predicted), as % of each true class with counts.

    Args:
        confusion: ``(K, K)`` counts from :func:`medseg_core.metrics.confusion_matrix` (summed over a dataset).
        class_names: K names.
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"confusion must be (K, K) with K = len(class_names) = {len(class_names)}; "
                         f"got {matrix.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = 100 * matrix / matrix.sum(axis=1, keepdims=True)
    labels = np.array([[f"{p:.1f} %\n({int(n):,} px)" for p, n in zip(prow, nrow)] for prow, nrow in zip(percent, matrix)])
    size = 1.6 * len(class_names) + 1.8
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    names = [name.replace("_", " ") for name in class_names]
    sns.heatmap(percent, annot=labels, fmt="", cmap="Blues", vmin=0, vmax=100, xticklabels=names, yticklabels=names,
                cbar_kws={"label": "% of the true class's pixels"}, ax=ax)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "pixel confusion matrix")
    fig.tight_layout()
    return fig


def plot_attention_weights(
    weights: Mapping[str, torch.Tensor],
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str = "",
) -> plt.Figure:
    """Per-channel attention weights of each attention block: batch mean (line) and batch range (band).

    Args:
        weights: ``{block name: (B, C) weights}``, e.g. ``model.attention_weights()`` after a forward pass.
        groups: ``{block name: names}`` for blocks whose channels are equal consecutive groups (ASPP's
            concatenation of its branches); each group is shaded and named.

    Raises:
        ValueError: no weights (run a forward pass first), a tensor that is not ``(B, C)``, or a group count that
            does not divide C.
    """
    if not weights:
        raise ValueError("no attention weights: run a forward pass first (and use a model with attention blocks)")
    fig, axes = plt.subplots(len(weights), 1, figsize=(10, 2.9 * len(weights)), squeeze=False)
    for ax, (name, tensor) in zip(axes[:, 0], weights.items()):
        values = torch.as_tensor(tensor).detach().float().cpu()
        if values.ndim != 2:
            raise ValueError(f"weights of {name!r} must be (B, C), got {tuple(values.shape)}")
        batch, channels = values.shape
        x = np.arange(channels)
        ax.fill_between(x, values.min(0).values.numpy(), values.max(0).values.numpy(), color="C0", alpha=0.25,
                        linewidth=0, label=f"range over {batch} image(s)")
        ax.plot(x, values.mean(0).numpy(), color="C0", linewidth=0.8, marker="o" if channels <= 64 else None,
                markersize=3, label="mean")
        names = (groups or {}).get(name)
        if names:
            if channels % len(names):
                raise ValueError(f"{name!r} has {channels} channels, not divisible into {len(names)} groups")
            width = channels // len(names)
            for index, group_name in enumerate(names):
                if index % 2:
                    ax.axvspan(index * width - 0.5, (index + 1) * width - 0.5, color="grey", alpha=0.12, linewidth=0)
                ax.text((index + 0.5) * width, 1.0, group_name, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8)
        ax.set(xlim=(-0.5, channels - 0.5), xlabel="channel", ylabel="weight (sigmoid)")
        ax.set_title(f"{name}: {channels} channels", fontsize=10, pad=14 if names else 6)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _metric_label(metric: str) -> str:
    return {"dice": "Dice", "iou": "IoU", "cldice": "clDice", "hd95": "HD95 (pixels)",
            "false_alarm": "false-alarm rate"}.get(metric, metric)


def plot_table(table: pd.DataFrame, title: str = "", formats: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None) -> plt.Figure:
    """A DataFrame drawn as a table, for figures in print.

    Args:
        formats: ``{column: format spec}``, e.g. ``{"parameters": ",d"}``.
        labels: ``{column: header}``; other columns keep their names.
    """
    formats, labels = formats or {}, labels or {}
    cells = [[format(value, formats[column]) if column in formats else str(value) for column, value in row.items()]
             for _, row in table.iterrows()]
    headers = [labels.get(c, str(c)) for c in table.columns]
    characters = np.array([max([len(header)] + [len(row[i]) for row in cells]) + 2 for i, header in enumerate(headers)])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.085 * characters.sum()), 0.32 * (len(table) + 1) + 0.5))
    ax.axis("off")
    drawn = ax.table(cellText=cells, colLabels=headers, cellLoc="right", colWidths=list(characters / characters.sum()),
                     bbox=(0, 0, 1, 1))
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(9)
    for (row, _), cell in drawn.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _order(values: pd.Series, order: Sequence[str] | None) -> list[str]:
    present = list(pd.unique(values))
    return [v for v in order if v in present] if order is not None else present


def _check_foreground_only(results: pd.DataFrame, include_empty: bool) -> None:
    """Refuse rows whose ground truth is empty (they score 0 or 1 by the empty-mask rule) unless asked."""
    if include_empty or "truth_pixels" not in results.columns:
        return
    empty = int((results["truth_pixels"] == 0).sum())
    if empty:
        raise ValueError(f"{empty} rows have an empty ground truth (truth_pixels == 0): they score exactly 0 or 1 and "
                         "would mix false alarms into the scores. Plot results[results['truth_pixels'] > 0], or pass "
                         "include_empty=True and say so in the title.")


def plot_ablation(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    by: str = "variant",
    order: Sequence[str] | None = None,
    reference: str | None = None,
    title: str = "",
    include_empty: bool = False,
) -> plt.Figure:
    """Per-variant mean over seeds with each seed's mean as a dot, one panel per metric.

    The 95 % interval over seeds is drawn only from :data:`~medseg_core.stats.MIN_SEEDS_FOR_INTERVAL` seeds on
    (see :func:`~medseg_core.stats.summarize_runs`); with fewer, the dots are the honest picture. The reference
    variant's mean is a dashed line.

    Args:
        results: per-case results of a grid (``by``, ``seed``, ``id`` and metric columns).
        order: variants from left to right (default: as they appear).
        reference: a variant to draw as a horizontal line.
        include_empty: allow cases whose ground truth is empty (``truth_pixels == 0``): they score exactly 0 or 1
            by the empty-mask rule, so by default such rows are refused (select the foreground cases, or say so
            in the title and pass True).

    Raises:
        ValueError: rows with an empty ground truth and ``include_empty`` is False.
    """
    _check_foreground_only(results, include_empty)
    order = _order(results[by], order)
    summary = summarize_runs(results, by=by, metrics=metrics)
    seed_means = results.groupby([by, "seed"], sort=False)[list(metrics)].mean().reset_index()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics) + 0.6, 3.8), squeeze=False, sharey=False)
    positions = {variant: index for index, variant in enumerate(order)}
    for ax, metric in zip(axes[0], metrics):
        rows = summary[summary["metric"] == metric].set_index(by).loc[order]
        x = np.arange(len(order))
        error = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
        has_interval = bool(np.isfinite(error).all())
        ax.errorbar(x, rows["mean"], yerr=error if has_interval else None, fmt="o", color="black", capsize=4,
                    markersize=6, label="mean, 95 % CI over seeds" if has_interval else "mean over seeds", zorder=3)
        dots = seed_means[seed_means[by].isin(order)]
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(dots))
        ax.scatter(dots[by].map(positions) + jitter, dots[metric], s=14, color="C0", alpha=0.6, label="one seed",
                   zorder=2)
        if reference is not None and reference in rows.index:
            ax.axhline(rows.loc[reference, "mean"], color="grey", linestyle="--", linewidth=1, label=f"{reference} mean")
        ax.set_xticks(x, order, rotation=30, ha="right")
        ax.set(xlabel="", ylabel=_metric_label(metric), title=_metric_label(metric))
        if metric in _BOUNDED_METRICS:  # intervals are clipped to the metric's bounds
            ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    n_seeds = int(summary["n_seeds"].max())
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title or f"test metrics per variant ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
    fig.tight_layout()
    return fig


def plot_paired_differences(comparison: pd.DataFrame, by: str = "variant", title: str = "") -> plt.Figure:
    """Forest plot of a :func:`~medseg_core.stats.paired_comparison` table: mean difference and interval per variant.

    One panel per metric, two panels per row. Black: the family-wise t-interval over test clusters (videos or patients);
    orange (from :data:`~medseg_core.stats.MIN_SEEDS_FOR_INTERVAL` seeds on): the t-interval across seeds at the
    same family-wise level. Beside
    each: the smallest difference the design detects (80 % power), so an interval around 0 is read correctly.
    """
    metrics = list(pd.unique(comparison["metric"]))
    variants = list(pd.unique(comparison[by]))
    columns = min(2, len(metrics))
    rows_of_panels = int(np.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(5.2 * columns, (0.45 * len(variants) + 1.6) * rows_of_panels
                                                              + 0.5), squeeze=False, sharey=True)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    level = f"{100 * comparison['confidence'].iloc[0]:.4g} %"  # one family-wise level for both units
    for ax, metric in zip(axes.flat, metrics):
        rows = comparison[comparison["metric"] == metric].set_index(by).loc[variants]
        y = np.arange(len(variants))
        error = np.vstack([rows["mean_difference"] - rows["ci_low"], rows["ci_high"] - rows["mean_difference"]])
        ax.errorbar(rows["mean_difference"], y, xerr=np.nan_to_num(error), fmt="o", color="black", capsize=4,
                    label=f"{level} CI over test clusters (t, family-wise)")
        seed_error = np.vstack([rows["mean_difference"] - rows["seed_ci_low"],
                                rows["seed_ci_high"] - rows["mean_difference"]])
        if np.isfinite(seed_error).any():
            ax.errorbar(rows["mean_difference"], y + 0.22, xerr=seed_error, fmt="none", color="C1", capsize=3,
                        linewidth=2.5, alpha=0.7, label=f"{level} CI across seeds (family-wise)")
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        for position, (_, row) in zip(y, rows.iterrows()):
            ax.annotate(f"detects ≥ {row['detectable']:.3f}", (1.0, position), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(y, variants)
        reference = rows["reference"].iloc[0]
        ax.set(xlabel=f"{_metric_label(metric)}: variant − {reference} (paired, per test case)",
               title=_metric_label(metric))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].invert_yaxis()  # first variant on top (the axes share y: invert once)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False, fontsize=9)
    n_cases, n_clusters = int(comparison["n_cases"].max()), int(comparison["n_clusters"].max())
    n_seeds = int(comparison["n_seeds"].max())
    fig.suptitle(title or f"difference to {comparison['reference'].iloc[0]}: {n_cases} test cases in {n_clusters} "
                          f"videos/patients, {n_seeds} seed(s) averaged per case")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_metric_boxes(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    by: str = "variant",
    order: Sequence[str] | None = None,
    case: str | Sequence[str] = "id",
    title: str = "",
    include_empty: bool = False,
) -> plt.Figure:
    """Box plots of per-case metrics: metrics along x, one coloured box per group; each dot is one test case.

    A case's value is its mean over the seeds present (so every case counts once); values a group does not have
    (NaN, e.g. an undefined HD95) are left out. Use bounded metrics (Dice, IoU, ...) together: they share one
    0-1 axis. Cases with an empty ground truth are refused unless ``include_empty`` (see :func:`plot_ablation`).
    """
    _check_foreground_only(results, include_empty)
    case = [case] if isinstance(case, str) else list(case)
    order = _order(results[by], order)
    per_case = results.groupby([by, *case], sort=False)[list(metrics)].mean().reset_index()
    width = 0.8 / len(order)
    fig, ax = plt.subplots(figsize=(1.6 + len(metrics) * (0.45 * len(order) + 0.5), 4.0))
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for index, group in enumerate(order):
        rows = per_case[per_case[by] == group]
        values = [rows[metric].dropna().to_numpy() for metric in metrics]
        positions = np.arange(len(metrics)) - 0.4 + (index + 0.5) * width
        colour = f"C{index % 10}"
        ax.boxplot(values, positions=positions, widths=0.85 * width, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": colour, "alpha": 0.35}, medianprops={"color": colour, "linewidth": 2})
        for position, metric_values in zip(positions, values):
            jitter = rng.uniform(-0.3, 0.3, len(metric_values)) * width
            ax.scatter(position + jitter, metric_values, s=7, color=colour, alpha=0.8, zorder=3)
        ax.scatter([], [], color=colour, marker="s", s=40, label=f"{group} (n = {len(rows)})")
    ax.set_xticks(range(len(metrics)), [_metric_label(m) for m in metrics])
    ax.set(xlim=(-0.5, len(metrics) - 0.5), ylabel="value per test case")
    if all(metric in _BOUNDED_METRICS for metric in metrics):
        ax.set_ylim(-0.02, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title=by, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    ax.set_title(title or "per-case test metrics (box: quartiles; dot: one test case, averaged over seeds)")
    fig.tight_layout()
    return fig


def plot_window_length_curve(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "cldice"),
    level: str = "level",
    by: str = "variant",
    baseline: str | Sequence[str] | None = None,
    xlabel: str = "window length T (frames)",
    title: str = "",
) -> plt.Figure:
    """Metrics against a numeric level (the window length): mean over seeds with its 95 % band, one panel each.

    Args:
        results: per-case grid results with a ``level`` column (NaN for the baselines) and ``by`` / ``seed``.
        baseline: variants without a level (the 2D U-Net, the top-hat filter), each drawn as a horizontal line
            with its band.

    With one seed the bands are undefined and not drawn; the title gives the number of seeds.
    """
    baselines = [baseline] if isinstance(baseline, str) else list(baseline or [])
    curve_rows = results[~results[by].isin(baselines)]
    summary = summarize_runs(curve_rows.dropna(subset=[level]), by=level, metrics=metrics).sort_values(level)
    seed_means = curve_rows.groupby([level, "seed"])[list(metrics)].mean().reset_index()
    present = [name for name in baselines if name in set(results[by])]
    base = summarize_runs(results[results[by].isin(present)], by=by, metrics=metrics) if present else None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.9), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = summary[summary["metric"] == metric]
        ax.plot(rows[level], rows["mean"], marker="o", color="C0", label="SVSnet, mean over seeds")
        if np.isfinite(rows["ci_low"]).all():  # an interval over seeds only from MIN_SEEDS_FOR_INTERVAL seeds on
            ax.fill_between(rows[level], rows["ci_low"], rows["ci_high"], color="C0", alpha=0.2, label="95 % CI")
        ax.scatter(seed_means[level], seed_means[metric], s=12, color="C0", alpha=0.5, label="one seed")
        for index, name in enumerate(present):
            row = base[(base["metric"] == metric) & (base[by] == name)].iloc[0]
            colour = ("C3", "C2", "C4")[index % 3]
            ax.axhline(row["mean"], color=colour, linestyle="--", linewidth=1.2, label=f"{name}, mean")
            if np.isfinite(row["ci_low"]) and row["ci_high"] > row["ci_low"]:
                ax.axhspan(row["ci_low"], row["ci_high"], color=colour, alpha=0.1, label=f"{name}, 95 % CI")
        ax.set_xticks(rows[level].to_numpy())
        ax.set(xlabel=xlabel, ylabel=_metric_label(metric), title=f"{_metric_label(metric)} vs {xlabel.split(' (')[0]}")
        ax.grid(alpha=0.3)
    n_seeds = int(summary["n_seeds"].max())
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or f"test metrics vs window length ({n_seeds} seed{'s' if n_seeds != 1 else ''}; "
                          f"{int(summary['n_cases'].max())} test frames)")
    fig.tight_layout()
    return fig


def plot_cost_curve(
    costs: pd.DataFrame,
    x: str = "window_length",
    columns: Mapping[str, str] | None = None,
    baseline: pd.Series | None = None,
    baseline_name: str = "baseline",
    xlabel: str = "window length T (frames)",
    title: str = "",
) -> plt.Figure:
    """Model costs (an :func:`architecture_table` with an ``x`` column) against ``x``, one panel per cost.

    Args:
        columns: ``{column: axis label}`` (default parameters in millions, GFLOPs and CPU latency).
        baseline: one row of the same table (e.g. the 2D U-Net) drawn as a dashed line.
    """
    columns = dict(columns or {"parameters": "parameters (millions)", "gflops": "GFLOPs per forward pass",
                               "latency_ms": "CPU latency, batch 1 (ms)"})
    costs = costs.sort_values(x)
    scale = {"parameters": 1e-6}
    fig, axes = plt.subplots(1, len(columns), figsize=(4.3 * len(columns), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], columns.items()):
        factor = scale.get(column, 1.0)
        ax.plot(costs[x], costs[column] * factor, marker="o", color="C0", label="SVSnet")
        if baseline is not None:
            ax.axhline(baseline[column] * factor, color="C3", linestyle="--", linewidth=1.2, label=baseline_name)
        ax.set_xticks(costs[x].to_numpy())
        ax.set(xlabel=xlabel, ylabel=label, ylim=(0, None))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_transfer_curve(
    results: pd.DataFrame,
    metric: str = "dice",
    x: str = "train_frames",
    by: str = "start",
    order: Sequence[str] | None = None,
    reference: float | None = None,
    reference_label: str = "reference",
    xlabel: str = "real training frames n (log scale)",
    ylabel: str | None = None,
    title: str = "",
) -> plt.Figure:
    """A metric against the number of training frames, one curve per group (e.g. where fine-tuning started).

    Each dot is one seed's mean over the cases; the line joins the means over seeds; the band is the 95 %
    t-interval over seeds, drawn only from :data:`~medseg_core.stats.MIN_SEEDS_FOR_INTERVAL` seeds on
    (:func:`~medseg_core.stats.summarize_runs` with ``unit="seed"``: training variability, not test-set
    variability). The x axis is logarithmic (base 2), ticked at the values present; the groups' dots are
    shifted a little apart so that they do not hide each other.

    Args:
        results: per-case results with ``by``, ``x``, ``seed``, ``id`` and ``metric`` columns (select the cases
            first, e.g. the frames with plaque); NaN values are left out.
        order: groups in legend order (default: as they appear).
        reference: a value drawn as a horizontal dashed line (e.g. the model before fine-tuning, n = 0).
        ylabel: default the metric's name.
    """
    order = _order(results[by], order)
    summary = summarize_runs(results, by=[by, x], metrics=[metric])
    seed_means = results.groupby([by, x, "seed"], sort=False)[metric].mean().reset_index()
    bounded = metric in _BOUNDED_METRICS or metric == "false_alarm"
    fig, ax = plt.subplots(figsize=(7.4, 4.0))
    shifts = np.linspace(-0.06, 0.06, len(order)) if len(order) > 1 else np.zeros(1)  # in log2 units
    for index, (group, shift) in enumerate(zip(order, shifts)):
        colour = f"C{index % 10}"
        rows = summary[summary[by] == group].sort_values(x)
        ax.plot(rows[x], rows["mean"], marker="o", color=colour, label=f"{group}: mean over seeds", zorder=3)
        if len(rows) and np.isfinite(rows["ci_low"]).all():
            low, high = rows["ci_low"], rows["ci_high"]
            if bounded:
                low, high = low.clip(0, 1), high.clip(0, 1)
            ax.fill_between(rows[x], low, high, color=colour, alpha=0.18, label=f"{group}: 95 % CI over seeds")
        dots = seed_means[seed_means[by] == group]
        ax.scatter(dots[x] * 2.0 ** shift, dots[metric], s=16, color=colour, alpha=0.6, zorder=2,
                   label=f"{group}: one seed")
    if reference is not None and np.isfinite(reference):
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1.2, label=reference_label)
    ticks = np.sort(summary[x].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(int(t)) if float(t).is_integer() else str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(ticks[0] / 2 ** 0.4, ticks[-1] * 2 ** 0.4)  # the dots' shifts stay small, even for one n
    ax.set(xlabel=xlabel, ylabel=ylabel or _metric_label(metric))
    if bounded:
        ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False)
    n_seeds = int(summary["n_seeds"].max())
    ax.set_title(title or f"{_metric_label(metric)} vs {xlabel.split(' (')[0]} ({n_seeds} seed{'s' if n_seeds != 1 else ''}, "
                          f"{int(summary['n_cases'].max())} test cases)")
    fig.tight_layout()
    return fig
