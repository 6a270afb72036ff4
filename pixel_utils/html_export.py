"""Offline HTML copies of the executed notebooks, with working widgets.

nbconvert embeds the saved widget state, but by default loads the widget renderer and
require.js from a CDN, which fails offline. ``make setup`` stores the two JavaScript files from
the npm registry's ``@jupyter-widgets/html-manager`` and ``requirejs`` packages under
``.venv/share/pixel-kd/widgets`` (:func:`install_widget_assets`); :func:`export_html` copies
them next to the HTML and points nbconvert at those local copies, so the kernel-free swipe
slider of notebook 05 works from a file with no network.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
REQUIREJS = "requirejs@2.3.8"
ASSETS = {"embed-amd.js": (HTML_MANAGER, "package/dist/embed-amd.js"),
          "require.js": (REQUIREJS, "package/require.js")}  # fmt: skip


def assets_dir() -> Path:
    return Path(sys.prefix) / "share" / "pixel-kd" / "widgets"


def install_widget_assets() -> Path:
    """Fetch the two files once with ``npm pack`` (an install-time step, never at run time)."""
    target = assets_dir()
    if all((target / name).exists() for name in ASSETS):
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch the widget renderer for offline HTML")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, member) in ASSETS.items():
            packed = subprocess.run(
                [npm, "pack", package, "--silent"], cwd=tmp, check=True, capture_output=True,
                text=True,
            )  # fmt: skip
            out = packed.stdout.strip().splitlines()[-1]
            with tarfile.open(Path(tmp) / out) as tar:
                source = tar.extractfile(member)
                (target / name).write_bytes(source.read())
    return target


def export_html(notebook: Path, out_dir: Path) -> Path:
    """``notebook`` → ``out_dir/<name>.html`` with widget state and local widget JavaScript."""
    import nbformat
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / "widgets"
    local.mkdir(exist_ok=True)
    for name in ASSETS:
        shutil.copy(assets_dir() / name, local / name)
    exporter = HTMLExporter(
        widget_renderer_url="widgets/embed-amd.js", require_js_url="widgets/require.js"
    )
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    path = out_dir / f"{notebook.stem}.html"
    path.write_text(body, encoding="utf-8")
    return path


def main() -> int:
    print(f"widget JavaScript in {install_widget_assets()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
