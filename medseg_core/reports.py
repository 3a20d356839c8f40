"""Prose numbers generated from the committed tables: every stated result and run time has one home, its CSV.

Markdown files (the README, ``docs/*.md``) hold generated blocks between two markers::

    <!-- generated: ablation_eca -->
    ... written by :func:`render` from figures/ablation_eca_cases.csv ...
    <!-- end generated -->

:func:`render` rewrites every block from the tables in a figures folder (``medseg report FILE...``), and
:func:`stale_blocks` lists the blocks that differ from a fresh rendering (``medseg report --check``, and a test), so
a number in the prose cannot drift from its CSV. Every sentence that states an effect comes from
:mod:`medseg_core.stats` (:meth:`~medseg_core.experiments.AblationAnalysis.verdicts`,
:func:`~medseg_core.stats.describe_seed_effects`), never from hand-written text.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .notebooks import TIMES_FILE

__all__ = ["SECTIONS", "section", "render", "stale_blocks", "committed_time", "learner_minutes", "prerequisites",
           "Step", "TRACKS", "track_minutes"]

_BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _table(figures: Path, name: str, **kwargs) -> pd.DataFrame:
    path = figures / name
    if not path.is_file():
        raise DataError(f"{path} is missing: `make reproduce` (the cpu run of every notebook) writes it")
    return pd.read_csv(path, **kwargs)


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _markdown(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, table.columns)) + " |\n|" + "---|" * len(table.columns) + "\n"
    return header + "".join("| " + " | ".join(map(str, row)) + " |\n" for row in table.itertuples(index=False))


def committed_time(notebook: str, figures: str | Path | None = None) -> pd.DataFrame:
    """How long ``notebook`` (a stem such as ``"05_ablation_eca"``) took in the committed cpu run, and on what.

    Read from :data:`~medseg_core.notebooks.TIMES_FILE` in the committed ``figures/`` (the one home of stated run
    times); an empty table when the run has not been recorded yet.
    """
    from .provenance import committed_manifest

    path = Path(figures or committed_manifest().parent) / TIMES_FILE
    columns = ["notebook", "profile", "seconds", "minutes", "date", "cpu", "cores", "numerics"]
    if not path.is_file():
        return pd.DataFrame(columns=columns)
    times = _with_numerics(pd.read_csv(path, dtype={"notebook": str}))
    rows = times[times["notebook"] == notebook].assign(minutes=lambda t: (t["seconds"] / 60).round(1))
    return rows[columns].reset_index(drop=True)


def _with_numerics(times: pd.DataFrame) -> pd.DataFrame:
    """Times recorded before the ``numerics`` column existed (2026-12-03) say "numerics not recorded"."""
    unknown = "numerics not recorded"
    return times.assign(numerics=times["numerics"].fillna(unknown) if "numerics" in times else unknown)


def _cpu_times(figures: Path) -> tuple[pd.DataFrame, str]:
    """The cpu rows of the times table and the machines that ran them, in words."""
    times = _with_numerics(_table(figures, TIMES_FILE, dtype={"notebook": str}))
    times = times[times["profile"] == "cpu"]
    if times.empty:
        raise DataError(f"{figures / TIMES_FILE} holds no cpu run")
    machines = "; ".join(f"{cpu}, {cores} cores, {numerics}" for cpu, cores, numerics in
                         times[["cpu", "cores", "numerics"]].drop_duplicates().itertuples(index=False))
    return times, machines


def run_times(figures: Path) -> str:
    """The cpu run's time per notebook (the table ``medseg notebooks`` writes), with the machine that ran it."""
    times, machines = _cpu_times(figures)
    rows = pd.DataFrame({"notebook": times["notebook"], "seconds": times["seconds"].map(lambda s: f"{s:.0f}"),
                         "minutes": (times["seconds"] / 60).map(lambda m: f"{m:.1f}")})
    total = times["seconds"].sum()
    dates = ", ".join(sorted(times["date"].astype(str).unique()))
    return (_markdown(rows) + f"| **all** | **{total:.0f}** | **{total / 60:.1f}** |\n\n"
            f"Measured by `medseg notebooks --profile cpu` on {dates} ({machines}).\n")


def run_time_total(figures: Path) -> str:
    """One line: how long the committed cpu run of every notebook took, and on what."""
    times, machines = _cpu_times(figures)
    return (f"The committed cpu run of the {len(times)} notebooks took **{times['seconds'].sum() / 60:.0f} minutes** "
            f"({machines}); per notebook: [docs/results.md](docs/results.md#run-times-cpu-profile).\n")


def _grid_section(figures: Path, grid_name: str, metrics: list[str], foreground_only: bool) -> str:
    from . import experiments as ex
    from .stats import foreground_split

    grid = ex.ABLATIONS[grid_name]
    results = ex.read_committed_results(grid, figures)
    unit = "videos" if grid.task == "xca" else "patients"
    scored = results[results["truth_pixels"] > 0] if foreground_only else results
    analysis = grid.analyse(scored, metrics)
    summary = analysis.summary
    lead = metrics[0]
    rows = []
    alarms = foreground_split(results, by="variant", metrics=[lead]).set_index("variant") if foreground_only else None
    for variant in pd.unique(summary["variant"]):
        row = summary[(summary["variant"] == variant) & (summary["metric"] == lead)].iloc[0]
        deterministic = row["std"] == 0  # a weight-free baseline: every seed gives the same model
        interval = ("(deterministic: the same for every seed)" if deterministic else
                    f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]" if np.isfinite(row["ci_low"]) else "no interval")
        entry = {"variant": f"`{variant}`" + (" (baseline)" if variant == grid.baseline else ""),
                 f"{lead}, mean [95 % over seeds]": f"{_fmt(row['mean'])} {interval}",
                 "per seed": row["per_seed"]}
        for other in metrics[1:]:
            entry[other] = _fmt(summary[(summary["variant"] == variant) & (summary["metric"] == other)]["mean"].iloc[0])
        if alarms is not None:
            entry["false-alarm rate on empty frames (per seed)"] = (
                f"{_fmt(alarms.loc[variant, 'false_alarm_rate'])} ({alarms.loc[variant, 'false_alarm_rate_per_seed']})")
        rows.append(entry)
    frames = scored["id"].nunique()
    design = (f"{results['cluster'].nunique()} test {unit}, {frames} test frames"
              + (f" with foreground ({results['id'].nunique() - frames} without)" if foreground_only else "")
              + f", seeds {', '.join(map(str, sorted(results['seed'].unique())))}")
    verdicts = "\n".join(f"* {sentence}" for sentence in analysis.verdicts(lead))
    return (f"Design: {design} (`figures/{grid.name}_cases.csv`).\n\n" + _markdown(pd.DataFrame(rows))
            + f"\nEvery effect of {lead}, as `stats.describe_comparisons` words it from the paired table:\n\n"
            + verdicts + "\n")


def ablation_eca(figures: Path) -> str:
    """The ECA grid: plaque-frame scores per variant, false alarms per seed, and the generated verdicts."""
    return _grid_section(figures, "ablation_eca", ["dice", "iou"], foreground_only=True)


def ablation_window_length(figures: Path) -> str:
    """The window-length grid: scores per variant and the generated verdicts."""
    return _grid_section(figures, "ablation_window_length", ["dice", "cldice"], foreground_only=False)


def models(figures: Path) -> str:
    """Both training notebooks' models on their test frames with foreground, and false alarms apart."""
    from .stats import foreground_split

    table = _table(figures, "test_metrics_per_case.csv", dtype={"id": str, "cluster": str})
    split = foreground_split(table, by="model", metrics=["dice", "precision", "recall"])
    empty = table[table["truth_pixels"] == 0]
    flagged = (empty["predicted_pixels"] > 0).groupby(empty["model"]).sum().reindex(split["model"], fill_value=0)
    rows = [{"model": row["model"], "test frames with foreground": row["foreground_frames"],
             "test clusters": row["n_clusters"],
             "Dice [95 % over clusters]": f"{_fmt(row['dice'])} [{_fmt(row['dice_ci_low'])}, {_fmt(row['dice_ci_high'])}]",
             "precision": _fmt(row["precision"]), "recall": _fmt(row["recall"]),
             "frames without foreground: false alarms": (f"{flagged[row['model']]} of {row['empty_frames']}"
                                                         if row["empty_frames"] else "none")}
            for _, row in split.iterrows()]
    return (_markdown(pd.DataFrame(rows)) + "\nOne seed each (`figures/test_metrics_per_case.csv`); the interval is a "
            "t-interval over the test videos or patients' means, none below 3 of them.\n")


def synthetic_to_real(figures: Path) -> str:
    """Notebook 09: the domain gap and the per-n paired effect of synthetic pretraining, with generated verdicts."""
    from .stats import describe_seed_effects

    gap = _table(figures, "synthetic_to_real_domain_gap.csv")
    effect = _table(figures, "synthetic_to_real_paired_effect.csv")
    rows = [{"test set": row["test_set"], "plaque frames": row["foreground_frames"], "Dice on them": _fmt(row["dice"]),
             "plaque-free frames": row["empty_frames"], "false-alarm rate": _fmt(row["false_alarm_rate"], 2)}
            for _, row in gap.iterrows()]
    sentences = "\n".join(f"* {s}" for s in describe_seed_effects(effect, "train_frames", "synthetic − scratch"))
    return (_markdown(pd.DataFrame(rows)) + "\nThe synthetic model, no fine-tuning (`figures/synthetic_to_real_domain_gap.csv`; the real"
            " block is one patient). Fine-tuning on n real frames, synthetic start against scratch, paired by seed "
            "(`figures/synthetic_to_real_paired_effect.csv`):\n\n" + sentences + "\n")


READING_WORDS_PER_MINUTE = 175
"""A learner's reading speed for technical prose (150-200 words per minute is the usual range; the middle)."""
MINUTES_PER_EXERCISE = 3
"""A learner's minutes per checked exercise: read it, write the answer, check it (an estimate)."""

_WORD = re.compile(r"[A-Za-z]+")
_EXERCISE = re.compile(r"\bcheck\(\s*[\"']")
_PREREQUISITES = re.compile(r"\*\*(?:Prerequisites\.|Before you start:)\*\*(?P<text>.*?)(?:\n\s*\n|$)", re.S)
_NUMBER_RANGE = re.compile(r"\b(\d{2})\s*[-–]\s*(\d{2})\b")
_NUMBER = re.compile(r"\b(\d{2})(?=_|\b)")


def _notebook(stem: str) -> "nbformat.NotebookNode":  # noqa: F821 (imported below, only when needed)
    """The notebook ``stem`` (``"05_ablation_eca"``, or its number) of the kit's ``notebooks/``."""
    import nbformat

    from .notebooks import list_notebooks

    return nbformat.read(list_notebooks(only=[stem])[0], as_version=4)


def learner_minutes(stem: str) -> float:
    """An estimate of a learner's reading-and-exercise minutes for notebook ``stem``, measured from its text.

    The markdown's words at :data:`READING_WORDS_PER_MINUTE` plus :data:`MINUTES_PER_EXERCISE` per ``check(...)``
    call in its code cells; compute time is apart (``figures/notebook_times.csv``).
    """
    cells = _notebook(stem).cells
    words = sum(len(_WORD.findall(c.source)) for c in cells if c.cell_type == "markdown")
    exercises = sum(len(_EXERCISE.findall(c.source)) for c in cells if c.cell_type == "code")
    return words / READING_WORDS_PER_MINUTE + MINUTES_PER_EXERCISE * exercises


def prerequisites(stem: str) -> set[str]:
    """The notebook numbers (``"00"``...) that notebook ``stem``'s "**Prerequisites.**" paragraph names (a range such
    as "00-06" counts every number in it); empty when it has none."""
    match = _PREREQUISITES.search("\n\n".join(c.source for c in _notebook(stem).cells if c.cell_type == "markdown"))
    if match is None:
        return set()
    text = match.group("text")
    numbers = {f"{n:02d}" for low, high in _NUMBER_RANGE.findall(text) for n in range(int(low), int(high) + 1)}
    return (numbers | set(_NUMBER.findall(text))) - {stem[:2]}


@dataclass(frozen=True)
class Step:
    """One notebook of a lab track and how it is run: ``profile``, reading committed results (``use_committed``),
    and the notebooks whose runs it reuses (``reuses``)."""

    notebook: str
    profile: str = "cpu"
    use_committed: bool = False
    reuses: tuple[str, ...] = ()


TRACKS: dict[str, dict] = {
    "xca": {"title": "XCA and SVSnet", "after": (), "steps": (
        Step("00_quickstart"),
        Step("01_xca_sequences"),
        Step("02_train_svsnet", reuses=("00",)),
    )},
    "oct": {"title": "OCT, DeepLabV3+ with ECA and the explorers", "after": ("xca",), "steps": (
        Step("03_oct_data"),
        Step("04_train_deeplabv3plus_eca"),
        Step("05_ablation_eca", use_committed=True),
        Step("08_explorers", reuses=("00", "04")),
    )},
}
"""The 90-minute lab tracks: an ordered list of steps each, and the tracks whose notebooks (and runs, on the same
machine) they build on. No step runs the smoke profile: the models are trained on cpu or their results committed, so
the explorers show models that learned."""


def _compute_seconds(step: Step, figures: Path, times: pd.DataFrame, runs_made: set[str]) -> float:
    """Measured cpu seconds of ``step`` in the committed run; 0 for committed results (a read of a few tables).

    Notebook 08 trains notebook 05's ``none`` / ``both`` pair of seed 0 when 05 read committed results: their
    training seconds (``figures/ablation_eca_cases.csv``) are added to its measured time."""
    if step.use_committed:
        return 0.0
    row = times[(times["notebook"] == step.notebook) & (times["profile"] == step.profile)]
    if row.empty:
        raise DataError(f"{figures / TIMES_FILE} has no {step.profile} time of {step.notebook}")
    seconds = float(row["seconds"].iloc[0])
    if step.notebook.startswith("08") and "05" not in runs_made:
        cases = _table(figures, "ablation_eca_cases.csv", dtype={"id": str, "cluster": str})
        pair = cases[(cases["seed"] == 0) & cases["variant"].isin(["none", "both"])]
        seconds += pair.drop_duplicates(["variant", "seed"])["train_seconds"].sum()
    return seconds


def track_minutes(name: str, figures: str | Path) -> pd.DataFrame:
    """Track ``name``'s plan: per step the learner's and the compute minutes, the slot (the larger of the two,
    whole minutes: the learner reads while the notebook runs) and its minute range."""
    figures = Path(figures)
    times = _table(figures, TIMES_FILE, dtype={"notebook": str})
    track = TRACKS[name]
    runs_made = {step.notebook[:2] for after in track["after"] for step in TRACKS[after]["steps"]
              if not step.use_committed}
    rows, start = [], 0
    for step in track["steps"]:
        learner = learner_minutes(step.notebook)
        compute = _compute_seconds(step, figures, times, runs_made) / 60
        slot = math.ceil(max(learner, compute))
        rows.append({"step": step, "learner": learner, "compute": compute, "start": start, "end": start + slot,
                     "trains_eca_pair": step.notebook.startswith("08") and "05" not in runs_made})
        start += slot
        if not step.use_committed:
            runs_made.add(step.notebook[:2])
    return pd.DataFrame(rows)


def _how(step: Step, trains_eca_pair: bool) -> str:
    if step.use_committed:
        return "`use_committed = True`: reads the committed results"
    reuse = f", reuses the runs of {' and '.join(step.reuses)}" if step.reuses else ""
    pair = ", trains notebook 05's `none` and `both` runs of seed 0" if trains_eca_pair else ""
    return f'`profile = "{step.profile}"`{reuse}{pair}'


def lab_tracks(figures: Path) -> str:
    """Every lab track in one table: minutes, notebook, how, learner and compute minutes, and each track's totals."""
    rows = []
    for name, track in TRACKS.items():
        plan = track_minutes(name, figures)
        after = f", after {', '.join(a.upper() for a in track['after'])}" if track["after"] else ""
        for r in plan.itertuples():
            rows.append({"track": f"{name.upper()}{after}" if r.Index == 0 else "", "minutes": f"{r.start}-{r.end}",
                         "notebook": f"`{r.step.notebook}`", "how": _how(r.step, r.trains_eca_pair),
                         "learner minutes": f"{r.learner:.0f}", "compute minutes": f"{r.compute:.1f}"})
        rows.append({"track": "", "minutes": f"**0-{plan['end'].iloc[-1]}**", "notebook": f"**{name.upper()} total**",
                     "how": "", "learner minutes": f"**{plan['learner'].sum():.0f}**",
                     "compute minutes": f"**{plan['compute'].sum():.1f}**"})
    return (_markdown(pd.DataFrame(rows)) + f"\nLearner minutes are estimates measured from each notebook's text "
            f"(`reports.learner_minutes`: its words at {READING_WORDS_PER_MINUTE} per minute, {MINUTES_PER_EXERCISE} "
            "minutes per checked exercise); compute minutes are the committed cpu run's (`figures/notebook_times.csv`); "
            "a slot is the larger of the two, as the learner reads while the notebook runs.\n")


SECTIONS: dict[str, Callable[[Path], str]] = {
    "run_times": run_times,
    "run_time_total": run_time_total,
    "models": models,
    "ablation_eca": ablation_eca,
    "ablation_window_length": ablation_window_length,
    "synthetic_to_real": synthetic_to_real,
    "lab_tracks": lab_tracks,
}
"""The generated blocks, by marker name."""


def section(name: str, figures: str | Path) -> str:
    """One generated block's markdown from the tables in ``figures``.

    Raises:
        KeyError: ``name`` is not a section; the message lists them.
    """
    if name not in SECTIONS:
        raise KeyError(f"unknown generated section {name!r}; valid names: {', '.join(SECTIONS)}")
    return SECTIONS[name](Path(figures))


def render(text: str, figures: str | Path) -> str:
    """``text`` with every generated block rewritten from the tables in ``figures``."""
    return _BLOCK.sub(lambda m: m.group(1) + section(m.group("name"), figures) + m.group(4), text)


def stale_blocks(text: str, figures: str | Path) -> list[str]:
    """Names of the generated blocks of ``text`` that differ from a fresh rendering (empty: all in step)."""
    return [m.group("name") for m in _BLOCK.finditer(text) if m.group("body") != section(m.group("name"), figures)]
