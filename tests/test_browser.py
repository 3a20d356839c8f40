"""The XCA explorer in a real JupyterLab: headless Chromium (Playwright) runs a small notebook, the widget renders
by itself (the explorer detects the front end), and moving the frame slider redraws the picture and the readout.

Needs Playwright (dev extras) and a Chromium: ``CHROMIUM_PATH``, Debian's ``chromium`` (``make test`` installs
it as root) or a browser installed by ``playwright install chromium``. Without them the test skips and says so.
A screenshot goes to ``outputs/browser/xca_explorer.png``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from medseg_core.config import get_profile, kit_home
from medseg_core.data.synthetic_xca import ensure_xca_dataset
from medseg_core.data.xca import window_indices

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def _chromium() -> str:
    """Path of a Chromium executable, or skip with the reason."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install -e '.[dev]'")
    candidates = [os.environ.get("CHROMIUM_PATH")] + [shutil.which(n) for n in ("chromium", "chromium-browser")]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    if found:
        return found
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        bundled = playwright.chromium.executable_path
    if Path(bundled).is_file():
        return bundled
    pytest.skip("no Chromium found: install Debian's chromium (sudo apt-get install chromium), set CHROMIUM_PATH, "
                "or run `playwright install chromium`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout:.0f} s")


def _start_session(url: str, token: str, notebook: str) -> None:
    """Start the notebook's kernel through the REST API, as opening it in JupyterLab would (no kernel dialog)."""
    body = json.dumps({"path": notebook, "type": "notebook", "name": notebook, "kernel": {"name": "python3"}})
    request = urllib.request.Request(f"{url}/api/sessions", data=body.encode(), method="POST",
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201, response.status


def _explorer_notebook(folder: Path) -> Path:
    data = ensure_xca_dataset(get_profile("smoke").xca, folder / "xca")
    code = ("from medseg_core import create_model\n"
            "from medseg_core.data.xca import XCAWindowDataset\n"
            "from medseg_core.widgets import xca_explorer\n"
            "model = create_model('svsnet', window_length=4, base_channels=2).eval()\n"
            f"xca_explorer(model, XCAWindowDataset({str(data / 'test')!r}, window_length=4))")
    notebook = new_notebook(cells=[new_code_cell(code)], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "explorer.ipynb"
    nbformat.write(notebook, path)
    return path


@contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on a free localhost port with a random token, serving ``tmp_path``: (url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                   "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    environment.pop("MEDSEG_WIDGETS", None)  # the explorer must find the front end by itself
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_server(f"http://127.0.0.1:{port}/api/status?token={token}", process)
        yield f"http://127.0.0.1:{port}", token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_explorer_slider_redraws_in_jupyterlab(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    _explorer_notebook(tmp_path)
    screenshot = kit_home() / "outputs" / "browser" / "xca_explorer.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with _server(tmp_path) as (url, token), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            _start_session(url, token, "explorer.ipynb")
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{url}/lab/tree/explorer.ipynb?token={token}")
            page.locator(".jp-Notebook").wait_for(timeout=90_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            readout = page.locator(".jp-OutputArea-output .widget-html-content code")
            picture = page.locator(".jp-OutputArea-output .widget-image")
            expect(readout).to_contain_text("window frames [0, 0, 0, 1]", timeout=180_000)
            before = picture.get_attribute("src")
            handle = page.locator(".jp-OutputArea-output .widget-slider .noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.keyboard.press("ArrowRight")
            expect(readout).not_to_contain_text("window frames [0, 0, 0, 1]", timeout=60_000)
            expect(picture).not_to_have_attribute("src", before, timeout=30_000)
            # the readout names the frame the slider reached and the window SVSnet reads for it (centre policy)
            match = re.search(r"/(\d+): window frames \[([\d, ]+)\]", readout.inner_text())
            frame, window = int(match[1]), [int(v) for v in match[2].split(",")]
            assert frame >= 1 and window == window_indices(frame, 10_000, 4, "centre")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
