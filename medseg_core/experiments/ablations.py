"""The ablation grids of notebooks 05 and 06: :class:`Ablation` (design, run, analysis), :data:`ECA_ABLATION`,
:data:`WINDOW_LENGTH_ABLATION`, and the committed results notebooks can read instead of training."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from ..config import Profile
from ..errors import UnknownNameError
from ..tasks import get_task
from ..run_folder import RESULTS_FILE, RunFolder
from .runs import RunSource, _runs_relative, grid_run, run_grid

if TYPE_CHECKING:
    from ..provenance import FigureWriter


@dataclass(frozen=True)
class Ablation:
    """A variants x seeds grid on one task, trained under the profile's ablation budget.

    Args:
        name: results folder (``runs/<profile>_ablation/<name>``) and prefix of its figures and tables.
        task: ``"xca"`` or ``"oct"``.
        variants: ``{variant: {"model_name", "model_kwargs", "overrides"}}`` as :func:`run_grid` takes them.
        reference: the variant the others are compared with.
        notebook: the notebook that runs the grid (named in :meth:`source`).
        levels: an optional numeric level per variant (e.g. the window length), for curves.
        level_name: the name of the level, added as a second column beside ``level`` (e.g. ``"window_length"``).
        baseline: a weight-free variant (a classical filter or intensity rule, fitted on validation frames) that
            every table shows as a row: what the networks add over it. It is not part of the question's family.
    """

    name: str
    task: str
    variants: Mapping[str, Mapping[str, Any]]
    reference: str
    notebook: str
    levels: Mapping[str, float] = field(default_factory=dict)
    level_name: str | None = None
    baseline: str | None = None

    def variants_for(self, profile: Profile) -> dict[str, Mapping[str, Any]]:
        """The variants ``profile`` runs, in the grid's order: ``profile.ablation.grid_variants[name]``, else all.

        Raises:
            UnknownNameError: a chosen variant is not in the grid, or the reference is left out; the message lists
                the grid's variants.
        """
        chosen = profile.ablation.grid_variants.get(self.name)
        if chosen is None:
            return dict(self.variants)
        chosen = (*chosen, *([self.baseline] if self.baseline and self.baseline not in chosen else []))
        unknown = sorted(set(chosen) - set(self.variants))
        if unknown or self.reference not in chosen:
            problem = f"unknown variants {unknown}" if unknown else f"the reference {self.reference!r} is left out"
            raise UnknownNameError(f"ablation.grid_variants[{self.name!r}]: {problem}; the grid's variants: "
                                   f"{', '.join(self.variants)} (the reference {self.reference!r} must be one)")
        return {name: spec for name, spec in self.variants.items() if name in chosen}

    def results_dir(self, profile: Profile) -> Path:
        """Folder of the grid's run folders for ``profile``."""
        return profile.ablation_profile().run_dir(self.name)

    def run_dir(self, profile: Profile, variant: str, seed: int) -> Path:
        """The run folder of one variant and seed (what :func:`run_grid` writes)."""
        return grid_run(self.task, profile.ablation_profile(), self.results_dir(profile), self.variants[variant],
                        seed).folder.path

    def source(self, profile: Profile, variant: str, seed: int = 0) -> RunSource:
        """One run of the grid as a :class:`RunSource`, for :func:`reuse_or_train` (other notebooks reuse it).

        Raises:
            UnknownNameError: ``variant`` is not in the grid; the message lists its variants.
        """
        if variant not in self.variants:
            raise UnknownNameError(f"{self.name} has no variant {variant!r}; its variants: {', '.join(self.variants)}")
        spec = self.variants[variant]
        return RunSource(self.notebook, self.task, profile.ablation_profile().override(spec.get("overrides")),
                         self.run_dir(profile, variant, seed), spec.get("model_name") or get_task(self.task).default_model,
                         dict(spec.get("model_kwargs") or {}), seed)

    def run(self, profile: Profile, seeds: Sequence[int] | None = None, recompute: bool = False,
            verbose: bool = True) -> pd.DataFrame:
        """Train (or read back) every variant of :meth:`variants_for` with every seed; per-case results (see
        :func:`run_grid`).

        ``seeds`` defaults to ``profile.ablation.seeds_for(name)``; ``level`` (and ``level_name``) columns are added
        when levels are defined.
        """
        seeds = profile.ablation.seeds_for(self.name) if seeds is None else seeds
        results = run_grid(self.task, profile.ablation_profile(), self.variants_for(profile), seeds,
                           self.results_dir(profile),
                           recompute=recompute, verbose=verbose)
        if self.levels:
            results["level"] = results["variant"].map(self.levels)
            if self.level_name:
                results[self.level_name] = results["level"]
        return results

    def results(self, profile: Profile, writer: "FigureWriter", *, use_committed: bool = False,
                recompute: bool = False) -> tuple[pd.DataFrame, str, "FigureWriter"]:
        """The grid's per-case table for a notebook: trained (or read back) and saved, or the committed one.

        ``use_committed``: the table the committed cpu run saved (:func:`read_committed_results`), nothing trained,
        and a writer whose figures and tables go to ``runs/committed_results/`` (the committed ``figures/`` are
        never overwritten). Otherwise :meth:`run`, saved as ``<name>_cases`` through ``writer``.

        Returns:
            ``(results, source, writer)``: the table, the words that name where it came from (for manifests), and
            the writer the notebook should use from here on.
        """
        from dataclasses import replace

        from ..provenance import committed_manifest, read_manifest

        if use_committed:
            results = read_committed_results(self)
            row = read_manifest(committed_manifest()).set_index("file").loc[f"{self.name}_cases.csv"]
            source = f"figures/{self.name}_cases.csv (committed {row['profile']} run, commit {row['commit'][:7]})"
            writer = replace(writer, folder=profile.paths.runs / "committed_results",
                             seeds=sorted(results["seed"].unique().tolist()))
            print(f"read {source}, seeds {row['seeds']}: nothing is trained")
            return results, source, writer
        results = self.run(profile, recompute=recompute)
        source = self.describe(profile)
        writer.save_table(results, f"{self.name}_cases", source=source)
        return results, source, writer

    def design(self, profile: Profile) -> pd.DataFrame:
        """The design before it runs: what it can detect. One row per unit of the question (test clusters, seeds).

        ``comparisons`` is the family (every network variant of :meth:`variants_for` against the reference),
        ``level`` each interval's family-wise confidence, ``detectable_sd`` the smallest mean difference a paired
        t-test on that many units detects with 80 % power at that level, in standard deviations of the per-unit
        differences of that unit (noncentral t, :func:`~medseg_core.stats.detectable_effect_size`); times the spread
        of that unit's differences (clusters or seeds, each its own), it is the difference the design can detect.
        """
        from ..stats import MIN_SEEDS_FOR_INTERVAL, POWER, detectable_effect_size, family_confidence

        ablation = profile.ablation_profile()
        comparisons = len([v for v in self.variants_for(profile) if v not in (self.reference, self.baseline)])
        level = family_confidence(0.95, comparisons)
        units = {"test " + ("videos" if self.task == "xca" else "patients"): get_task(self.task).test_clusters(ablation),
                 "seeds": len(profile.ablation.seeds_for(self.name))}
        rows = []
        for unit, count in units.items():
            minimum = MIN_SEEDS_FOR_INTERVAL if unit == "seeds" else 3
            effect = detectable_effect_size(count, 1 - level, POWER) if count >= minimum else float("nan")
            rows.append({"unit": unit, "count": count, "comparisons": comparisons, "level": level,
                         "detectable_sd": effect,
                         "question": (f"do these trained models differ on test {unit.split()[-1]} like these?"
                                      if unit != "seeds" else "does the difference survive retraining?")})
        return pd.DataFrame(rows)

    def analyse(self, results: pd.DataFrame, metrics: Sequence[str]) -> "AblationAnalysis":
        """Summary (baseline row included), the question's family and the networks-vs-baseline family, from the
        per-case table of :meth:`run` (or :func:`read_committed_results`)."""
        from ..stats import paired_comparison, summarize_runs

        metrics = list(metrics)
        networks = results[results["variant"] != self.baseline] if self.baseline else results
        summary = summarize_runs(results, by="variant", metrics=metrics)
        comparison = paired_comparison(networks, self.reference, metrics)
        against_baseline = None
        if self.baseline and self.baseline in set(results["variant"]):
            against_baseline = paired_comparison(results, self.baseline, metrics)
        return AblationAnalysis(self, summary, comparison, against_baseline)

    def describe(self, profile: Profile) -> str:
        """The grid's results folder relative to the runs folder (``runs/cpu_ablation/ablation_eca``), for manifests."""
        return _runs_relative(self.results_dir(profile), profile)

    def seeds_on_disk(self, profile: Profile) -> list[int]:
        """Seeds whose results exist for every variant of :meth:`variants_for` (what :meth:`run` reads back)."""
        seeds = sorted({int(path.parent.name.rsplit("_seed", 1)[1])
                        for path in self.results_dir(profile).glob(f"*_seed*/{RESULTS_FILE}")})
        return [seed for seed in seeds
                if all(RunFolder(self.run_dir(profile, variant, seed)).is_finished()
                       for variant in self.variants_for(profile))]


@dataclass(frozen=True)
class AblationAnalysis:
    """What :meth:`Ablation.analyse` finds: ``summary`` (:func:`~medseg_core.stats.summarize_runs`, baseline row
    included), ``comparison`` (the question's family: every network against the reference) and
    ``against_baseline`` (every network against the weight-free baseline, its own family; None without one)."""

    grid: Ablation
    summary: pd.DataFrame
    comparison: pd.DataFrame
    against_baseline: pd.DataFrame | None

    def verdicts(self, metric: str = "dice") -> list[str]:
        """Every sentence that states an effect of this grid, generated from its tables
        (:func:`~medseg_core.stats.describe_comparisons`): the question's family, then the baseline's."""
        from ..stats import describe_comparisons

        tables = [self.comparison, *([self.against_baseline] if self.against_baseline is not None else [])]
        unit = "videos" if self.grid.task == "xca" else "patients"
        return [sentence for table in tables
                for sentence in describe_comparisons(table[table["metric"] == metric], unit=unit)]


ECA_ABLATION = Ablation(
    name="ablation_eca",
    task="oct",
    variants={
        **{eca: {"model_name": "deeplabv3plus", "model_kwargs": {"eca": eca}} for eca in ("none", "skip", "aspp", "both")},
        # A plain U-Net with about DeepLabV3+'s parameter count (28 base channels: 5.9 M vs 5.8 M).
        "unet": {"model_name": "unet2d", "model_kwargs": {"base_channels": 28}},
        # A grey-value band in a ring of the field of view, fitted on the validation frames (models.oct_rules).
        "intensity": {"model_name": "intensity"},
    },
    reference="none",
    notebook="05_ablation_eca",
    baseline="intensity",
)

WINDOW_LENGTHS = (1, 2, 3, 4, 5, 7)
WINDOW_LENGTH_ABLATION = Ablation(
    name="ablation_window_length",
    task="xca",
    variants={
        **{f"T{t}": {"model_name": "svsnet", "overrides": {"xca.window_length": t}} for t in WINDOW_LENGTHS},
        "unet2d": {"model_name": "unet2d"},  # the 2D U-Net sees the labelled frame alone
        "tophat": {"model_name": "tophat"},  # black top-hat on the labelled frame, threshold fitted on validation
    },
    reference="T1",
    notebook="06_ablation_window_length",
    levels={f"T{t}": t for t in WINDOW_LENGTHS},
    level_name="window_length",
    baseline="tophat",
)


ABLATIONS = {grid.name: grid for grid in (ECA_ABLATION, WINDOW_LENGTH_ABLATION)}


def read_committed_results(grid: Ablation | str, figures: str | Path | None = None) -> pd.DataFrame:
    """The per-case results of an ablation grid as the committed run saved them, ``figures/<name>_cases.csv``.

    Notebooks 05 and 06 read this table with ``use_committed = True`` instead of training (the committed run is
    documented in ``figures/manifest.csv``); it has the columns of :meth:`Ablation.run` (plus what the notebook
    added before saving it, e.g. ``window_length``).

    Args:
        grid: an :class:`Ablation` (e.g. :data:`ECA_ABLATION`) or its name (a key of :data:`ABLATIONS`).
        figures: the folder of the tables (default: the committed ``figures/``).

    Raises:
        FileNotFoundError: the table is absent; the message names the file and how to make it.
    """
    from ..provenance import committed_manifest  # provenance imports plotting; only this reader needs it

    grid = ABLATIONS[grid] if isinstance(grid, str) else grid
    path = Path(figures or committed_manifest().parent) / f"{grid.name}_cases.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no committed results for {grid.name!r}: {path} does not exist. `make reproduce` "
                                "writes it (the cpu run of every notebook), or set use_committed = False to train here.")
    results = pd.read_csv(path, dtype={"id": str})
    if "cluster" not in results:  # tables written before cases carried their video or patient
        results.insert(1, "cluster", results["id"].map(get_task(grid.task).case_cluster))
    return results

