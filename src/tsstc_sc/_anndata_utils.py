"""Small AnnData helpers shared by the public functions (copy semantics, views)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData


def target(adata: AnnData, *, copy: bool) -> AnnData:
    """The object results are written to: a copy, or ``adata`` itself made actual if it is a view."""
    if copy:
        return adata.copy()
    if adata.is_view:
        # like scanpy: writing into a view first turns it into an actual AnnData (in place)
        adata._init_as_actual(adata.copy())
    return adata
