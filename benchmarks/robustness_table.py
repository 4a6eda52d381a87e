"""Write docs/robustness.md: every bad input of tests/test_robustness.py and the error a user gets.

usage: python benchmarks/robustness_table.py   (from the repository root)
"""

from __future__ import annotations

import sys
import warnings
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_robustness import CASES, base  # noqa: E402


def main() -> None:
    rows = []
    for case in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adata = case.make(base())
            try:
                case.call(adata)
                outcome, message = "no error (!)", ""
            except Exception as e:  # noqa: BLE001 - recording whatever a user would see
                outcome, message = type(e).__name__, str(e).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {case.name} | `{outcome}` | {message} |")
    text = f"""# What bad input gets

Every case below is a test in `tests/test_robustness.py`, which also checks that the call leaves
`adata` exactly as it was (deep comparison with `anndata.tests.helpers.assert_equal`). Generated on
{date.today()} by `python benchmarks/robustness_table.py`.

| input | error | message |
|---|---|---|
{chr(10).join(rows)}

Valid but unusual input that works and gives the same result as CSR float32 counts (also tested):
dense, CSC, float64, int64 and uint16 `X`; raw counts in a layer (`layer=`; `X` untouched); an AnnData
view (made actual, like scanpy; its parent is untouched); a backed AnnData; a single library in
`library_key`; coincident spots (not neighbours of each other, reported); isolated spots (reported,
they keep their own expression at that scale); Visium data with the array grid but no
`obsm['spatial']`; stored scales reused with the arguments they were built with (recorded in `params`);
sections of 12-30 spots (fewer than the negatives per spot or the mixture's principal components). A
COO `X` cannot be stored in an AnnData at all (anndata refuses it). Training that diverges stops with
`FloatingPointError` naming `lr`. `copy=True` on a backed AnnData is refused before any work (it
cannot be copied without a file).

Reproducibility: on CPU, the same `random_state` gives bit-identical embeddings and labels, in one
process or across processes, for a fixed number of torch threads (`torch.get_num_threads()` when
`tl.tsstc` is called, set by `OMP_NUM_THREADS` or `torch.set_num_threads`; recorded in
`uns['tsstc']['params']['torch_threads']`; the test uses 2). numba, which scanpy's highly variable genes
and neighbours use, resets the OpenMP thread count torch shares: `tl.tsstc` sets torch's count
explicitly for its training and restores it afterwards, so its own steps change nothing, but a
`sc.pp.neighbors` call before it can (pin it with `torch.set_num_threads`). Different thread counts,
another CPU model (its BLAS/oneDNN kernels sum in another order) or a GPU may round differently: the
quickstart once gave ARI 0.532 here and 0.536 on the CI machine.
"""
    (ROOT / "docs" / "robustness.md").write_text(text)
    sys.stdout.write(f"{len(rows)} cases written to docs/robustness.md\n")


if __name__ == "__main__":
    main()
