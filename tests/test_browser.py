"""Notebook 05 used the way a person uses it: JupyterLab in Chromium, driven by Playwright.

Starts JupyterLab on localhost with this environment's kernel, opens a copy of notebook 05,
runs every cell (smoke profile), moves the swipe slider and the blur slider with the keyboard,
and checks from screenshots that the displayed image changed, that no cell shows an error and
that the browser console logged no errors. Needs Debian's Chromium, which ``make test``
installs (``.ci/install-chromium``); a missing Chromium fails the tests unless
``PIXEL_SKIP_BROWSER=1`` asks to skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SKIP = os.environ.get("PIXEL_SKIP_BROWSER") == "1"
pytestmark = pytest.mark.skipif(SKIP, reason="PIXEL_SKIP_BROWSER=1: browser tests skipped")


@pytest.fixture(autouse=True)
def _chromium_present():
    # Missing Chromium is a failure, not a skip: `make test` installs it (.ci/install-chromium).
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run `bash .ci/install-chromium` (or set "
                    "PIXEL_SKIP_BROWSER=1 to skip the browser tests knowingly)")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    # Notebook 05 only loads what notebooks 02-03 trained: make (or reuse) the smoke models.
    stages.trained_models(resolve_profile("smoke"))
    root = tmp_path / "lab"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "05_visual_comparisons.ipynb", root / "notebooks")
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = _free_port()
    env = {**os.environ, "PIXEL_PROFILE": "smoke",
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # fmt: skip
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", "--allow-root",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start: " + server.stdout.read().decode()[-2000:])
    yield url, root
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def _slider_handle(page, label: str):
    slider = page.locator(".widget-hslider", has=page.locator("label", has_text=label)).first
    return slider.locator(".noUi-handle").first


def test_notebook_05_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, root = jupyterlab
    console_errors, shots = [], tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.goto(f"{url}/lab/tree/notebooks/05_visual_comparisons.ipynb")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.wait_for_function(
            "window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=60_000
        )  # fmt: skip
        page.evaluate(
            "window.jupyterapp.shell.currentWidget.sessionContext.ready.then("
            "() => window.jupyterapp.commands.execute('notebook:run-all-cells'))"
        )
        # The panel's image appears when its cell has run; wait for every cell to finish.
        page.wait_for_selector("img.widget-image", timeout=180_000)
        page.wait_for_function(
            "(() => { const nb = window.jupyterapp.shell.currentWidget;"
            " return nb.sessionContext.session.kernel.status === 'idle' &&"
            " [...nb.content.widgets].every(c => c.model.type !== 'code' ||"
            " (c.model.executionCount !== null && !c.promptNode.textContent.includes('*'))); })()",
            timeout=240_000,
        )  # fmt: skip
        image = page.locator("img.widget-image").first
        image.scroll_into_view_if_needed()
        before = image.screenshot(path=str(shots / "before.png"))

        handle = _slider_handle(page, "swipe")
        handle.focus()
        for _ in range(20):
            page.keyboard.press("ArrowRight")
        page.wait_for_timeout(1500)
        after_swipe = image.screenshot(path=str(shots / "after_swipe.png"))

        handle = _slider_handle(page, "σ")
        handle.focus()
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        page.wait_for_timeout(6000)  # one model run per change, then the re-render
        after_blur = image.screenshot(path=str(shots / "after_blur.png"))

        errors = page.locator('[data-mime-type="application/vnd.jupyter.error"]').count()
        stderr = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
        browser.close()
    assert before != after_swipe, "moving the swipe slider did not change the image"
    assert after_swipe != after_blur, "moving the blur slider did not change the image"
    assert errors == 0, "a cell shows an error"
    assert not [s for s in stderr if "Traceback" in s or "Error" in s], stderr
    assert not console_errors, console_errors


def test_exported_html_swipe_works_offline(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from playwright.sync_api import sync_playwright

    from pixel_utils.report.html_export import assets_dir, export_html

    if not (assets_dir() / "embed-amd.js").exists():
        pytest.skip("widget JavaScript not installed (python -m pixel_utils.report.html_export)")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "Wiener: $$\\hat X = \\frac{K^*}{|K|^2 + \\lambda}\\,Y$$ with $\\lambda > 0$."
        ),
        nbformat.v4.new_code_cell(
            "import numpy as np\nfrom pixel_utils.report.widgets import static_swipe\n"
            "static_swipe(np.zeros((32, 48, 3)), np.ones((32, 48, 3)), frames=5)"
        ),
    ]
    NotebookClient(nb, kernel_name="python3", store_widget_state=True).execute()
    source = tmp_path / "swipe.ipynb"
    nbformat.write(nb, source)
    html = export_html(source, tmp_path / "html")
    text = html.read_text()
    assert not any(cdn in text for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs.cloudflare"))
    requested = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()

        def offline(route):
            requested.append(route.request.url)
            return route.continue_() if route.request.url.startswith("file:") else route.abort()

        page.route("**/*", offline)
        page.goto(html.as_uri())
        page.wait_for_selector("img.widget-image", timeout=30_000)
        image = page.locator("img.widget-image").last
        # MathJax typesets the TeX into CommonHTML spans, from the local copy only.
        page.wait_for_selector(".MathJax_CHTML", timeout=30_000)
        typeset = page.locator(".MathJax_CHTML").count()
        before = image.screenshot()
        page.locator(".noUi-handle").last.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(300)
        after = image.screenshot()
        browser.close()
    assert before != after, "the offline slider did not switch frames"
    assert typeset >= 2, "the two formulas were not rendered offline"
    assert not [u for u in requested if not u.startswith("file:")], "a network request was made"
    assert any(u.endswith("embed-amd.js") and u.startswith("file:") for u in requested)
