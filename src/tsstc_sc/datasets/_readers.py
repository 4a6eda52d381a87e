"""Readers for real spatial data from a local copy: ``.h5ad`` files and Space Ranger output folders."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scanpy as sc
from matplotlib.image import imread
from scipy import sparse

from .. import _logging as logg
from .._validation import check_spatial

_WHERE_TO_GET_DATA = (
    "Labelled spatial data can be downloaded, e.g. the LIBD human DLPFC Visium sections through the "
    "spatialLIBD project (http://spatial.libd.org/spatialLIBD) or Visium datasets from the 10x "
    "Genomics datasets page (https://www.10xgenomics.com/datasets); the package's tests use "
    "`../shared/data/` next to the repository when it is present."
)
_WHERE_SPACE_RANGER = (
    "it is written by 10x Genomics Space Ranger into its `outs/` folder (count matrix in `outs/`, "
    "positions, images and scale factors in `outs/spatial/`)"
)
_POSITION_COLUMNS = [
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
]
_N_ROWS_CHECKED = 1000  # rows of X inspected to tell raw counts from normalised values


def read_h5ad(path: str | Path, *, spatial_key: str = "spatial") -> ad.AnnData:
    """Read a local ``.h5ad`` file with spatial coordinates.

    Parameters
    ----------
    path
        Path of the ``.h5ad`` file.
    spatial_key
        Key in ``obsm`` holding the spot coordinates (n x 2 or n x 3, finite).

    Returns
    -------
    The AnnData, unchanged. A warning is logged where ``X`` does not look like raw counts
    (negative or non-integer values among its first rows).

    Raises
    ------
    FileNotFoundError
        Where ``path`` does not exist (the message says where to get data).
    KeyError
        Where ``obsm[spatial_key]`` is missing.
    TypeError
        Where the coordinates are not numbers.
    ValueError
        Where the coordinates are not n x 2 or n x 3, or not finite.

    Examples
    --------
    >>> import tempfile, pathlib, tsstc_sc
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tissue.h5ad"
    >>> tsstc_sc.datasets.synthetic_tissue(n_spots=100, n_genes=100).write_h5ad(path)
    >>> tsstc_sc.datasets.read_h5ad(path).obsm["spatial"].shape
    (100, 2)
    """
    path = Path(path)
    if not path.is_file():
        msg = f"No file at {path}. {_WHERE_TO_GET_DATA}"
        raise FileNotFoundError(msg)
    adata = ad.read_h5ad(path)
    _check_coordinates(adata, spatial_key, path)
    if adata.X is not None and not _looks_like_counts(adata.X):
        logg.warning(
            f"{path.name}: X has negative or non-integer values, it does not look like raw counts; "
            "methods expecting counts may misbehave."
        )
    return adata


def read_visium(
    path: str | Path,
    *,
    count_file: str = "filtered_feature_bc_matrix.h5",
    library_id: str | None = None,
    load_images: bool = True,
) -> ad.AnnData:
    """Read a 10x Genomics Visium Space Ranger output folder.

    Only in-tissue spots present in the count matrix are kept.

    Parameters
    ----------
    path
        The Space Ranger ``outs/`` folder: it holds ``count_file`` and a ``spatial/`` folder with
        ``tissue_positions.csv`` (Space Ranger ≥ 2, with a header) or ``tissue_positions_list.csv``
        (older, without one).
    count_file
        The 10x ``.h5`` count matrix in ``path``.
    library_id
        Key of the library in ``uns['spatial']``; by default the ``library_ids`` attribute of the
        count file, else the folder's name.
    load_images
        Whether to read the hires and lowres tissue images (when present).

    Returns
    -------
    AnnData with raw counts in ``X`` (unique ``var_names``, gene ids in ``var['gene_ids']``),
    ``obs['in_tissue']``, ``obs['array_row']``, ``obs['array_col']``, ``obsm['spatial']``
    (full-resolution pixels, x = column, y = row) and, where present,
    ``uns['spatial'][library_id]`` with ``images``, ``scalefactors`` and ``metadata``, as scanpy
    lays them out.

    Raises
    ------
    FileNotFoundError
        Where the folder, the count file or the positions file is missing.
    ValueError
        Where barcodes of the count matrix have no position (files from different Space Ranger runs).

    Examples
    --------
    >>> import tsstc_sc
    >>> tsstc_sc.datasets.read_visium("no/such/outs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: No Space Ranger output folder at no/such/outs; ...
    """
    path = Path(path)
    if not path.is_dir():
        msg = f"No Space Ranger output folder at {path}; {_WHERE_SPACE_RANGER}."
        raise FileNotFoundError(msg)
    counts_path = path / count_file
    if not counts_path.is_file():
        msg = f"Count matrix {counts_path} not found; {_WHERE_SPACE_RANGER}."
        raise FileNotFoundError(msg)

    adata = _read_10x_counts(counts_path)
    positions = _read_positions(path / "spatial")
    missing = adata.obs_names.difference(positions.index)
    if len(missing):
        msg = (
            f"{len(missing)} barcodes of {counts_path.name} (e.g. {missing[0]}) have no tissue position in "
            f"{path / 'spatial'}; the count matrix and the positions must come from the same Space Ranger run."
        )
        raise ValueError(msg)
    positions = positions.loc[adata.obs_names]
    adata = adata[positions["in_tissue"].to_numpy() == 1].copy()
    positions = positions.loc[adata.obs_names]
    for column in ("in_tissue", "array_row", "array_col"):
        adata.obs[column] = positions[column].to_numpy()
    adata.obsm["spatial"] = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64)

    attributes = _file_attributes(counts_path)
    library_id = library_id or attributes.pop("library_ids", None) or _folder_name(path)
    spatial = _read_spatial_metadata(path / "spatial", attributes, load_images=load_images)
    if spatial:
        adata.uns["spatial"] = {library_id: spatial}
    logg.info(f"read {adata.n_obs} in-tissue spots x {adata.n_vars} genes from {path}")
    return adata


def _check_coordinates(adata: ad.AnnData, spatial_key: str, path: Path) -> None:
    """The package's coordinate check; its message names the file and how to load it to fix it."""
    try:
        check_spatial(adata, spatial_key)
    except (KeyError, TypeError, ValueError) as e:
        msg = f"{path.name}: {e.args[0]} To fix the file, load it with `anndata.read_h5ad({str(path)!r})` first."
        raise type(e)(msg) from None


def _looks_like_counts(x: np.ndarray | sparse.spmatrix | sparse.sparray) -> bool:
    """Whether the first rows of ``x`` are non-negative integers."""
    head = x[:_N_ROWS_CHECKED]
    values = head.data if sparse.issparse(head) else np.asarray(head)
    return bool(np.all(values >= 0) and np.all(values == np.round(values)))


def _read_10x_counts(counts_path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        # gene symbols repeat; made unique right below
        warnings.filterwarnings("ignore", message="Variable names are not unique", category=UserWarning)
        adata = sc.read_10x_h5(counts_path)
    adata.var_names_make_unique()
    return adata


def _read_positions(spatial_dir: Path) -> pd.DataFrame:
    """Tissue positions indexed by barcode, from Space Ranger >= 2 (header) or older (no header)."""
    current, legacy = spatial_dir / "tissue_positions.csv", spatial_dir / "tissue_positions_list.csv"
    if current.is_file():
        positions = pd.read_csv(current)
    elif legacy.is_file():
        positions = pd.read_csv(legacy, header=None, names=_POSITION_COLUMNS)
    else:
        msg = f"Neither {current} nor {legacy} found; {_WHERE_SPACE_RANGER}."
        raise FileNotFoundError(msg)
    return positions.set_index("barcode")


def _file_attributes(counts_path: Path) -> dict[str, str]:
    """String attributes of a 10x h5 file (library id, chemistry, software version)."""
    with h5py.File(counts_path, "r") as f:
        attributes = dict(f.attrs)
    out = {}
    for key, value in attributes.items():
        value = value[0] if isinstance(value, np.ndarray) and value.size else value
        if isinstance(value, bytes | np.bytes_):
            value = value.decode()
        if isinstance(value, str):
            out[key] = value
    return out


def _folder_name(path: Path) -> str:
    """The sample's name: the folder holding ``outs/``, or the folder itself."""
    resolved = path.resolve()
    return resolved.parent.name if resolved.name == "outs" else resolved.name


def _read_spatial_metadata(spatial_dir: Path, attributes: dict[str, str], *, load_images: bool) -> dict:
    """``uns['spatial'][library_id]`` content: images, scale factors and metadata, as far as present."""
    spatial: dict = {}
    images = {
        resolution: imread(spatial_dir / f"tissue_{resolution}_image.png")
        for resolution in ("hires", "lowres")
        if load_images and (spatial_dir / f"tissue_{resolution}_image.png").is_file()
    }
    if images:
        spatial["images"] = images
    scalefactors = spatial_dir / "scalefactors_json.json"
    if scalefactors.is_file():
        spatial["scalefactors"] = json.loads(scalefactors.read_text())
    metadata = {k: attributes[k] for k in ("chemistry_description", "software_version") if k in attributes}
    if spatial and metadata:
        spatial["metadata"] = metadata
    return spatial
