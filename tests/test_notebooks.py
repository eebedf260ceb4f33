"""Every chapter notebook follows the book's conventions and runs end to end in smoke mode (papermill)."""
import json
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [ROOT / f"{c['file']}.ipynb" for c in TOC["chapters"]]
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def test_every_toc_chapter_exists():
    missing = [str(p) for p in CHAPTERS if not p.exists()]
    assert not missing and CHAPTERS


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, source(cell)[:80]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_cell_is_the_colab_setup(path):
    first = next(c for c in cells(path) if c["cell_type"] == "code")
    text = source(first)
    assert '"google.colab" in sys.modules' in text
    assert f'REPO_URL = "{REPO_URL}"' in text, "the Colab cell must use _config.yml's repository.url"
    for kept in ("torch", "numpy", "ipywidgets"):
        assert kept in text   # pinned to Colab's installed versions by a constraints file


def test_colab_cells_are_identical():
    firsts = {source(next(c for c in cells(p) if c["cell_type"] == "code")) for p in CHAPTERS}
    assert len(firsts) == 1


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_fits_the_page(path):
    """The HTML page shows about 90 characters of code; longer lines are cut off."""
    long = [line for c in cells(path) if c["cell_type"] == "code"
            for line in source(c).splitlines() if len(line) > 90]
    assert not long, long


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exactly_one_parameters_cell_with_a_smoke_switch(path):
    tagged = [c for c in cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert "CFGRL_SMOKE" in source(tagged[0])


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode_with_papermill(path, smoke_notebook):
    out = smoke_notebook(path)     # executed once per session; the book build renders the same copy
    executed = json.loads(out.read_text())
    images = sum("image/png" in o.get("data", {}) for c in executed["cells"] if c["cell_type"] == "code"
                 for o in c.get("outputs", []))
    assert images >= 2, "a chapter should show its figures"
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    warnings = ["".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])
                if o.get("output_type") == "stream" and o.get("name") == "stderr"
                and "warn" in "".join(o.get("text", "")).lower()]
    assert not warnings, f"warnings in the executed outputs (a reader would see them): {warnings}"
