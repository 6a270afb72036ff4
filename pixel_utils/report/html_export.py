"""Offline HTML copies of the executed notebooks, with working widgets and equations.

nbconvert embeds the saved widget state, but by default loads the widget renderer, require.js
and MathJax from a CDN, which fails offline. ``make setup`` stores the two JavaScript files from
the npm registry's ``@jupyter-widgets/html-manager`` and ``requirejs`` packages, and the parts of
MathJax 2 that render TeX as HTML (``mathjax`` package: the loader, the TeX input, the CommonHTML
output and its web fonts), under ``.venv/share/pixel-kd/widgets`` (:func:`install_widget_assets`);
:func:`export_html` copies them next to the HTML and points nbconvert at those local copies, so
the kernel-free swipe slider of notebook 05 and every formula work from a file with no network.
Mermaid (diagrams in Markdown) is never loaded: the notebooks have none.
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
MATHJAX = "mathjax@2.7.9"  # the version family nbconvert's templates configure
#: The members of the MathJax package that TeX → CommonHTML rendering needs (about 3 MB of 21).
MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "extensions/", "jax/input/TeX/",
                 "jax/output/CommonHTML/", "jax/element/", "fonts/HTML-CSS/TeX/woff/")  # fmt: skip
MATHJAX_URL = "widgets/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"


def assets_dir() -> Path:
    return Path(sys.prefix) / "share" / "pixel-kd" / "widgets"


def install_widget_assets() -> Path:
    """Fetch the two files once with ``npm pack`` (an install-time step, never at run time)."""
    target = assets_dir()
    if all((target / name).exists() for name in ASSETS) and (target / "mathjax").is_dir():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch the widget renderer for offline HTML")
    target.mkdir(parents=True, exist_ok=True)

    def pack(package: str, tmp: str) -> Path:
        packed = subprocess.run(
            [npm, "pack", package, "--silent"], cwd=tmp, check=True, capture_output=True,
            text=True,
        )  # fmt: skip
        return Path(tmp) / packed.stdout.strip().splitlines()[-1]

    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, member) in ASSETS.items():
            with tarfile.open(pack(package, tmp)) as tar:
                source = tar.extractfile(member)
                (target / name).write_bytes(source.read())
        staging = target / ".mathjax.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(pack(MATHJAX, tmp)) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                if member.isfile() and name.startswith(MATHJAX_PARTS):
                    out = staging / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(tar.extractfile(member).read())
        shutil.rmtree(target / "mathjax", ignore_errors=True)
        staging.rename(target / "mathjax")
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
    if not (local / "mathjax").is_dir():
        shutil.copytree(assets_dir() / "mathjax", local / "mathjax")
    exporter = HTMLExporter(
        widget_renderer_url="widgets/embed-amd.js",
        require_js_url="widgets/require.js",
        mathjax_url=MATHJAX_URL,
        # Mermaid renders diagrams in Markdown; the notebooks have none, so it is never fetched.
        mermaid_js_url="widgets/mermaid-not-bundled.mjs",
        mermaid_layout_elk_js_url="widgets/mermaid-not-bundled.mjs",
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


def _markdown_tables(markdown: str) -> list[list[str]]:
    """The pipe tables of ``markdown``, each as its list of rows."""
    tables, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def _html_table(rows: list[str]) -> str:
    import html

    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows if "---" not in r]
    head, *body = cells
    out = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
    for r in body:
        out += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
    return out + "</table>"


def write_index(report_dir: Path, figures: Path) -> Path:
    """``report_dir/html/index.html``: the headline results table, the key figures (copied
    next to it) and a link to every exported notebook, readable offline."""
    import html
    import json

    out = report_dir / "html"
    out.mkdir(parents=True, exist_ok=True)
    results_path = report_dir / "results.json"
    table = "<p>No results.json yet: run notebook 04.</p>"
    if results_path.exists():
        from pixel_utils.report.readme import results_markdown, slim

        markdown = results_markdown(slim(json.loads(results_path.read_text())))
        table = "".join(_html_table(block) for block in _markdown_tables(markdown))
    key = ("04_quality_vs_speed.png", "02_quality_vs_time.png", "04_gain_by_case.png",
           "05_crops_headline.png", "03_kd_gain_over_training.png",
           "06_quality_vs_flicker.png")  # fmt: skip
    shown = []
    (out / "figures").mkdir(exist_ok=True)
    for name in key:
        if (figures / name).exists():
            shutil.copy(figures / name, out / "figures" / name)
            shown.append(f'<figure><img src="figures/{name}" alt="{name}" style="max-width:100%">'
                         f"<figcaption>{name}</figcaption></figure>")  # fmt: skip
    links = "".join(
        f'<li><a href="{p.name}">{html.escape(p.stem)}</a></li>'
        for p in sorted(out.glob("[0-9][0-9]_*.html"))
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Image sharpening by knowledge "
        "distillation: report</title><style>body{font-family:sans-serif;max-width:70em;"
        "margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
        "</style></head><body><h1>Image sharpening by knowledge distillation</h1>"
        f"<h2>Results</h2>{table}<h2>Notebooks</h2><ul>{links}</ul><h2>Key figures</h2>"
        + "".join(shown)
        + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
