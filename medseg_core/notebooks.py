"""Run the numbered notebooks headless with papermill, in order, for one profile.

``make reproduce`` and the notebook tests call :func:`run_notebooks`; so does ``medseg notebooks``. Each
notebook gets the profile through its ``parameters`` cell; executed copies go to an output folder (never back
into ``notebooks/``, which stays output-free in git). The first failing notebook stops the run with a
:class:`NotebookError` naming the notebook, the cell and the error, and pointing at the executed copy.
"""
from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from .config import kit_home
from .errors import ConfigError, UnknownNameError

__all__ = ["NotebookError", "list_notebooks", "run_notebooks", "figure_writers", "TIMES_FILE", "write_times"]

TIMES_FILE = "notebook_times.csv"
"""The run-time table of a run into a figures folder (one row per notebook): the one home of stated run times."""

_NUMBERED = re.compile(r"^(\d{2})_.+\.ipynb$")
# writer.save_figure(fig, "name", ...) / writer.save_table(table, "name", ...) in a notebook's code cells
_SAVED = re.compile(r"\bsave_(figure|table)\(\s*[^,()]+(?:\([^()]*\))?\s*,\s*(f?)[\"']([^\"']+)[\"']")


class NotebookError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


def list_notebooks(folder: str | Path | None = None, only: Sequence[str] | None = None) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) of ``folder`` (default: the checkout's ``notebooks/``) in order;
    ``only`` keeps those whose number or name is listed.

    Raises:
        UnknownNameError: ``only`` matches no notebook; the message lists the valid numbers.
    """
    folder = Path(folder) if folder is not None else kit_home() / "notebooks"
    if not folder.is_dir():
        raise NotebookError(f"no notebooks folder at {folder}: run from a checkout of the kit or set MEDSEG_HOME")
    notebooks = sorted(p for p in Path(folder).iterdir() if _NUMBERED.match(p.name))
    if only:
        wanted = {str(item).removesuffix(".ipynb") for item in only}
        notebooks = [p for p in notebooks if p.stem in wanted or p.stem[:2] in wanted]
        if not notebooks:
            numbers = ", ".join(p.stem[:2] for p in sorted(Path(folder).iterdir()) if _NUMBERED.match(p.name))
            raise UnknownNameError(f"no notebook matches {', '.join(map(str, only))} in {folder}; valid numbers: "
                                   f"{numbers} (or the notebooks' names)")
    return notebooks


def figure_writers(folder: str | Path | None = None) -> pd.DataFrame:
    """Which notebook writes which file of ``figures/``: one row per ``save_figure`` / ``save_table`` call in the
    notebooks' code cells, with columns ``file`` (the name without extension), ``kind`` (figure or table) and
    ``notebook``. One owner per file is the kit's rule (a test checks it); names built at run time (f-strings) are
    listed with ``dynamic`` True."""
    import nbformat

    rows = []
    for path in list_notebooks(folder):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                for kind, prefix, name in _SAVED.findall(cell.source):
                    rows.append({"file": name, "kind": kind, "notebook": path.stem, "dynamic": prefix == "f"})
    return pd.DataFrame(rows, columns=["file", "kind", "notebook", "dynamic"])


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")


def write_times(figures_dir: str | Path, profile: str, notebook: str, seconds: float) -> Path:
    """Record one notebook's run time in ``figures_dir/``:data:`TIMES_FILE` (its row replaced, others kept), with
    the date, the CPU model, the core count and the numerics (float32 or bfloat16 autocast): prose and notebooks
    state run times from this table only."""
    from .files import write_csv_atomic
    from .runtime import cpu_numerics

    path = Path(figures_dir) / TIMES_FILE
    table = pd.read_csv(path, dtype={"notebook": str}) if path.is_file() else pd.DataFrame()
    if not table.empty:
        table = table[~((table["notebook"] == notebook) & (table["profile"] == profile))]
    row = pd.DataFrame([{"notebook": notebook, "profile": profile, "seconds": round(seconds, 1),
                         "date": time.strftime("%Y-%m-%d"), "cpu": _cpu_model(), "cores": os.cpu_count(),
                         "numerics": cpu_numerics()}])
    table = pd.concat([table, row], ignore_index=True).sort_values(["profile", "notebook"], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(table, path)
    return path


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_notebooks(
    profile: str = "smoke",
    output_dir: str | Path | None = None,
    *,
    only: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    figures_dir: str | Path | None = None,
    notebook_dir: str | Path | None = None,
    kernel_name: str = "python3",
    progress: bool = True,
) -> pd.DataFrame:
    """Execute the numbered notebooks in order with papermill; stop at the first failure.

    Args:
        profile: passed to every notebook's ``parameters`` cell as ``profile``.
        output_dir: executed copies go here (default ``outputs/notebooks/<profile>``).
        only: run a subset (numbers like ``"02"`` or stems like ``"02_train_svsnet"``).
        parameters: extra papermill parameters given to every notebook.
        figures_dir: exported as ``MEDSEG_FIGURES`` for the kernels (default ``<output_dir>/figures``, so
            runs never overwrite the committed ``figures/`` unless asked to). Each notebook's time is written to
            its :data:`TIMES_FILE` as it finishes (:func:`write_times`).

    Returns:
        One row per notebook: ``notebook``, ``seconds``, ``output``.

    Raises:
        NotebookError: a notebook raised; the run stops there.
        ConfigError: papermill is not installed.
    """
    try:
        import papermill as pm  # imported here: only notebook runs need it
    except ImportError as error:
        raise ConfigError(f"running notebooks needs papermill, which is not installed ({error}): "
                          "pip install -e \".[notebooks]\" (make install installs it)") from None

    output_dir = Path(output_dir or kit_home() / "outputs" / "notebooks" / profile).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    figures = Path(figures_dir).resolve() if figures_dir else output_dir / "figures"
    rows = []
    with _environment({"MEDSEG_FIGURES": str(figures)}):
        for notebook in list_notebooks(notebook_dir, only):
            output = output_dir / notebook.name
            start = time.perf_counter()
            try:
                pm.execute_notebook(
                    notebook,
                    output,
                    parameters={"profile": profile, **(parameters or {})},
                    cwd=str(notebook.parent),
                    kernel_name=kernel_name,
                    progress_bar=False,
                    log_output=False,
                )
            except pm.PapermillExecutionError as error:
                raise NotebookError(
                    f"{notebook.name} failed in cell {error.cell_index} (execution count {error.exec_count}): "
                    f"{error.ename}: {error.evalue}\nexecuted copy with the traceback: {output}"
                ) from None
            seconds = time.perf_counter() - start
            rows.append({"notebook": notebook.name, "seconds": round(seconds, 1), "output": str(output)})
            write_times(figures, profile, notebook.stem, seconds)
            if progress:
                print(f"[{profile}] {notebook.name}: ok in {seconds:.1f} s", flush=True)
    return pd.DataFrame(rows)
