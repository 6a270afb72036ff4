"""Run the numbered notebooks in order with papermill: ``python -m pixel_utils.report``.

Each ``notebooks/NN_*.ipynb`` is executed with the profile injected as a parameter, its
executed copy written to ``reports/<profile>/``, and its wall time printed and recorded in
``reports/<profile>/timings.json``. The first failure stops the run with the notebook, the
cell and the error named, and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from pixel_utils.arguments import whole_number
from pixel_utils.paths import ensure_dir, notebooks_dir, reports_dir
from pixel_utils.profiles import DEFAULT_PROFILE, PROFILES, is_profile_field, resolve_profile


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or notebooks_dir()
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


class NotebookFailed(RuntimeError):
    pass


def run_notebook(path: Path, profile: str, out_dir: Path, timeout: int, parameters: dict) -> float:
    import os

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from pixel_utils.progress import PROGRESS_ENV

    # The kernel inherits this: its training and evaluation bars (with ETA) print to this
    # terminal, below the runner's own cell bar, instead of into the executed notebook.
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "terminal"
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(out_dir / path.name),
            parameters={"profile": profile, **parameters},
            kernel_name="python3",
            cwd=str(path.parent),
            execution_timeout=timeout,
            progress_bar={"desc": path.stem, "leave": False},  # cells done, elapsed, ETA
            log_output=False,
        )
    except PapermillExecutionError as err:
        raise NotebookFailed(
            f"{path.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  executed copy: {out_dir / path.name}"
        ) from None
    finally:
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before
    return time.perf_counter() - start


def _export_html(executed: Path, html_dir: Path) -> None:
    from pixel_utils.report.html_export import assets_dir, export_html

    if not (assets_dir() / "embed-amd.js").exists():
        once = "run `python -m pixel_utils.report.html_export` once"
        print(f"  (no offline HTML: {once}; {executed.name})")
        return
    print(f"  html: {export_html(executed, html_dir)}", flush=True)


def _fingerprint(path: Path, parameters: dict) -> str:
    payload = path.read_bytes() + json.dumps(parameters, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()


def split_parameters(parameters: dict, notebooks: list[Path]) -> dict:
    """Runner parameters → what every notebook of the run receives: profile fields go into
    one ``overrides`` dict (so all notebooks resolve the same profile, hence the same run and
    artefacts); the other names must be declared in some notebook's ``parameters`` cell."""
    import papermill as pm

    reserved = {"profile": "choose the profile with --profile",
                "overrides": "give each profile field as its own -p NAME VALUE"}  # fmt: skip
    clash = sorted(set(parameters) & set(reserved))
    if clash:
        raise NotebookFailed(f"parameter {clash[0]!r} is set by the runner: {reserved[clash[0]]}")
    overrides = {k: v for k, v in parameters.items() if is_profile_field(k)}
    others = {k: v for k, v in parameters.items() if not is_profile_field(k)}
    declared = set().union(*(pm.inspect_notebook(str(p)) for p in notebooks)) if others else set()
    unknown = sorted(set(others) - declared)
    if unknown:
        raise NotebookFailed(
            f"unknown parameter(s) {unknown}: neither a profile field (pixel_utils/profiles.py) "
            "nor declared in a notebook's parameters cell"
        )
    return {"overrides": overrides, **others}


def run_report(
    profile: str = DEFAULT_PROFILE,
    only: list[str] | None = None,
    timeout: int = 3600,
    parameters: dict | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Run the notebooks in order. With ``resume``, notebooks that already completed with the
    same source and parameters (recorded in ``completed.json``) are skipped up to the first one
    that did not, e.g. after a failure or an interruption."""
    notebooks = numbered_notebooks()
    if not notebooks:
        raise NotebookFailed(f"no notebooks to run in {notebooks_dir()}")
    if only:
        chosen = [p for p in notebooks if any(p.name.startswith(o) for o in only)]
        if not chosen:
            names = ", ".join(p.stem for p in notebooks)
            raise NotebookFailed(f"no notebook matches --only {' '.join(only)} (the notebooks: "
                                 f"{names})")  # fmt: skip
    parameters = split_parameters(parameters or {}, notebooks)
    try:
        run = resolve_profile(profile, **parameters["overrides"]).run_name
    except ValueError as err:  # a profile field of the wrong type
        raise NotebookFailed(str(err)) from None
    out_dir = ensure_dir(reports_dir(run))
    if only:
        notebooks = chosen
    if run != profile:
        print(f"[{profile}] run {run}: overrides {parameters['overrides']}", flush=True)
    record_path = out_dir / "completed.json"
    completed = json.loads(record_path.read_text()) if record_path.exists() else {}
    timings: dict[str, float] = {}
    skipping = resume
    for path in notebooks:
        fingerprint = _fingerprint(path, {"profile": profile, **parameters})
        if skipping and completed.get(path.name) == fingerprint:
            print(f"[{profile}] {path.name}: already complete, skipped (--resume)", flush=True)
            continue
        skipping = False
        completed.pop(path.name, None)
        record_path.write_text(json.dumps(completed, indent=1))
        print(f"[{profile}] running {path.name} ...", flush=True)
        seconds = run_notebook(path, profile, out_dir, timeout, parameters)
        timings[path.stem] = round(seconds, 1)
        completed[path.name] = fingerprint
        record_path.write_text(json.dumps(completed, indent=1))
        print(f"[{profile}] {path.name}: {seconds:.1f} s", flush=True)
        _export_html(out_dir / path.name, out_dir / "html")
    from pixel_utils.paths import figures_dir
    from pixel_utils.report.html_export import write_index

    print(f"[{run}] index: {write_index(out_dir, figures_dir(run))}", flush=True)
    timings["total"] = round(sum(timings.values()), 1)
    (out_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    print(f"[{profile}] total: {timings['total']:.1f} s  (timings in {out_dir / 'timings.json'})")
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--only", nargs="+", help="notebook number prefixes, e.g. 01 02")
    parser.add_argument(
        "--timeout", type=whole_number(1), default=3600, help="per-cell timeout (s)"
    )
    parser.add_argument("--resume", action="store_true",
                        help="skip notebooks that already completed unchanged")  # fmt: skip
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="papermill parameter override (value parsed as JSON when possible)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    params = {}
    for name, value in args.parameter:
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    try:
        run_report(args.profile, args.only, args.timeout, params, args.resume)
    except NotebookFailed as err:
        print(f"report failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
