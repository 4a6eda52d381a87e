"""Tutorials: committed with outputs, re-executed from scratch by the slow run (``pytest -m slow``)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _tagged_text(path: Path, tag: str) -> str:
    cell = next(c for c in _cells(path) if tag in c.get("metadata", {}).get("tags", []))
    return "".join("".join(o.get("text", "")) for o in cell["outputs"])


def _scores(line: str) -> tuple[float, float]:
    ari, nmi = re.fullmatch(r"ARI (\d\.\d{3}), NMI (\d\.\d{3})\n", line).groups()
    return float(ari), float(nmi)


def test_tutorials_are_committed_executed_with_a_title():
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart_dlpfc", "squidpy_workflow", "choosing_spatial_scales"}
    for path in NOTEBOOKS:
        cells = _cells(path)
        assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), path.name
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(c["execution_count"] is not None for c in code), f"{path.name} has unexecuted cells"
        counts = [c["execution_count"] for c in code]
        assert counts == list(range(1, len(code) + 1)), f"{path.name} was not run top to bottom"
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path.name} has error outputs"
        figures = [o for c in code for o in c["outputs"] if "image/png" in o.get("data", {})]
        assert figures, f"{path.name} shows no figure"


def test_committed_quickstart_shows_a_plausible_ari():
    """What the committed tutorial tells its readers; that the code still produces it is checked by
    re-executing the notebook (the slow run below)."""
    ari, nmi = _scores(_tagged_text(TUTORIALS / "quickstart_dlpfc.ipynb", "ari"))
    assert 0.45 < ari < 1 and 0.55 < nmi < 1


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_tutorial_reexecutes_from_scratch(path, tmp_path, monkeypatch):
    if importlib.util.find_spec("nbclient") is None:
        pytest.skip('executing notebooks needs the doc extra: pip install -e ".[doc]"')
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the thread count the committed outputs were made with
    monkeypatch.syspath_prepend(str(TUTORIALS))
    sys.modules.pop("execute", None)
    from execute import execute

    execute(path, tmp_path / path.name)
    if path.stem == "quickstart_dlpfc":
        # Same seed and thread count. Bit-identical only on the CPU model that made the committed
        # outputs: BLAS/oneDNN kernels round differently on other CPUs (CI: 0.536 vs committed 0.532),
        # so across machines the ARI must stay within 0.02 (a rounding margin, not the seed-to-seed SD).
        new, committed = (_scores(_tagged_text(p, "ari")) for p in (tmp_path / path.name, path))
        assert new == pytest.approx(committed, abs=0.02)
