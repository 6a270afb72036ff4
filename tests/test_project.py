"""The repository's own conventions: environment files agree, notebooks are clean and
parameterised, profiles resolve."""

import json
import re
import tomllib
from pathlib import Path

import pytest

from pixel_utils.profiles import PROFILES, resolve_profile

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_environment_yml_agrees_with_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = (ROOT / "environment.yml").read_text()
    python = re.search(r"-\s*python=(\d+\.\d+)", env).group(1)
    assert f">={python}" in pyproject["project"]["requires-python"]
    assert re.search(r"-\s*-e\s+\.\[dev\]", env), (
        "environment.yml must install the project (-e .[dev])"
    )
    deps = pyproject["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_notebooks_exist_and_are_numbered():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("01_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_parameterised(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "profile = None" in "".join(tagged[0]["source"])
    following = code[code.index(tagged[0]) + 1]
    assert re.search(r"resolve_profile\(\s*profile", "".join(following["source"]))
    assert nb["cells"][0]["cell_type"] == "markdown" and nb["cells"][-1]["cell_type"] == "markdown"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_opens_with_what_it_teaches_and_ends_with_what_we_learned(path):
    """The course's shape: the first cell says what the notebook teaches; the last section is
    "What we learned", whose sentences a code cell generates from the run (a closing line that
    points on may follow it), after the exercises, glossary and reading."""
    cells = json.loads(path.read_text())["cells"]
    assert "**What this notebook teaches.**" in "".join(cells[0]["source"])
    headings = [
        (i, line)
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown"
        for line in "".join(c["source"]).splitlines()
        if line.startswith("## ")
    ]
    last, heading = headings[-1]
    assert heading == "## What we learned", f"the last section is {heading!r}"
    assert [h for _, h in headings].count("## What we learned") == 1
    assert cells[last + 1]["cell_type"] == "code"  # the generated conclusions
    assert any(h.startswith("## Exercises") for _, h in headings[:-1])
    assert all(c["cell_type"] == "markdown" for c in cells[last + 2 :])
    assert len(cells) - last <= 3


def test_profiles_resolve_from_env(monkeypatch):
    monkeypatch.setenv("PIXEL_PROFILE", "smoke")
    assert resolve_profile().name == "smoke"
    assert resolve_profile("full").name == "full"
    assert resolve_profile(None, patch_size=None).patch_size == PROFILES["smoke"].patch_size
    assert resolve_profile("smoke", patch_size=40).patch_size == 40
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_profile("huge")
    with pytest.raises(ValueError, match="unknown profile field"):
        resolve_profile("smoke", batchsize=3)


def test_network_is_blocked_for_the_test_process():
    import socket

    from tests.conftest import NetworkBlocked

    with pytest.raises(NetworkBlocked), socket.socket() as s:
        s.connect(("93.184.216.34", 80))


def test_the_package_is_grouped_by_concern_and_every_module_imports():
    """The folder list reads as the architecture, and no module was left with a stale import."""
    import importlib
    import pkgutil

    import pixel_utils

    root = Path(pixel_utils.__file__).parent
    groups = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    assert groups == {"data", "models", "training", "evaluation", "report", "app"}
    loose = {p.stem for p in root.glob("*.py")} - {"__init__", "__main__"}
    assert loose == {"profiles", "paths", "seeding", "artefacts", "progress", "provenance",
                     "arguments"}  # fmt: skip
    for info in pkgutil.walk_packages([str(root)], prefix="pixel_utils."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
