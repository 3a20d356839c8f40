"""The installed ``medseg`` command answers, and a normal (non-editable) install writes data, runs and figures under
the working directory, not site-packages."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_installed_medseg_command_reports_the_project_version_and_its_commands():
    medseg = Path(sys.executable).with_name("medseg")  # the console script pip wrote beside this interpreter
    if not medseg.is_file():
        pytest.skip(f"no installed medseg command at {medseg} (make install)")
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    version = subprocess.run([str(medseg), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == f"medseg {declared}", version
    usage = subprocess.run([str(medseg), "--help"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and "--version" in usage.stdout
    assert all(command in usage.stdout for command in ("notebooks", "train", "predict", "check-figures")), usage.stdout


def test_install_files_pin_one_torch_and_the_cpu_index_is_an_option():
    makefile = (REPO / "Makefile").read_text()
    spec = re.search(r"^TORCH_SPEC \?= (.+)$", makefile, re.MULTILINE).group(1).split()
    for name in ("environment.yml", "environment-cpu.yml"):
        pins = [line.strip()[2:] for line in (REPO / name).read_text().splitlines() if line.strip().startswith("- torch")]
        assert [pin.removesuffix("+cpu") for pin in pins] == spec, name
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    index = "https://download.pytorch.org/whl/cpu"
    dry = {option: subprocess.run(["make", "-n", "-W", "pyproject.toml", "install", *option], cwd=REPO,
                                  capture_output=True, text=True, check=True).stdout
           for option in ((), (f"TORCH_INDEX={index}",))}
    assert f"--index-url {index} {' '.join(spec)}" in dry[(f"TORCH_INDEX={index}",)]
    assert "--index-url" not in dry[()] and " ".join(spec) in dry[()]  # the default keeps pip's own configuration


def test_set_up_installs_a_git_filter_that_stages_notebooks_without_outputs(tmp_path):
    venv = Path(sys.prefix)
    if shutil.which("make") is None or shutil.which("git") is None or not (venv / "bin" / "nbstripout").is_file():
        pytest.skip("needs make, git and nbstripout in the environment (make install)")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    installed = subprocess.run(["make", "-f", str(REPO / "Makefile"), f"VENV={venv}", "notebook-filter"], cwd=tmp_path,
                               capture_output=True, text=True, check=True)
    assert "notebook filter installed" in installed.stdout
    committed = (REPO / "notebooks" / "00_quickstart.ipynb").read_bytes()
    notebook = json.loads(committed)
    cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    cell["outputs"], cell["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}], 3
    (tmp_path / "run.ipynb").write_text(json.dumps(notebook))  # as JupyterLab saves it after a run
    subprocess.run(["git", "add", "run.ipynb"], cwd=tmp_path, check=True)
    staged = subprocess.run(["git", "show", ":run.ipynb"], cwd=tmp_path, capture_output=True, check=True).stdout
    assert staged == committed  # outputs and counts gone, cell ids and formatting as committed
    outside = tmp_path / "not_a_checkout"
    outside.mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    skipped = subprocess.run(["make", "-f", str(REPO / "Makefile"), f"VENV={venv}", "notebook-filter"], cwd=outside,
                             env=env, capture_output=True, text=True, check=True)
    assert "not a git checkout" in skipped.stdout


@pytest.mark.slow
def test_non_editable_install_writes_under_the_working_directory(tmp_path):
    target, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--no-index", "--target", str(target), str(REPO)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build the package here: {build.stderr.strip().splitlines()[-1:]}")
    code = ("import medseg_core, medseg_core.config as c; p = c.get_profile('smoke');"
            "print(medseg_core.__file__); print(p.paths.data); print(p.paths.runs); print(p.run_dir('x'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSEG_")}
    env["PYTHONPATH"] = str(target)
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    module, data, runs, run_dir = out.stdout.split()
    assert Path(module).is_relative_to(target), "the installed copy, not the checkout, was imported"
    assert Path(data) == work / "data" and Path(runs) == work / "runs" and Path(run_dir) == work / "runs" / "smoke" / "x"
