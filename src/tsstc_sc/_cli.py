"""``tsstc-sc`` command line: run TSstc on an ``.h5ad`` (or the built-in synthetic tissue)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from ._clustering import ClusterMethod
from ._spatial_graphs import Unit


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tsstc-sc", description="Spatial domains with TSstc.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="find spatial domains; without INPUT, on the built-in synthetic tissue")
    run.add_argument("input", nargs="?", type=Path, help=".h5ad with raw counts and obsm['spatial']")
    run.add_argument(
        "--n-clusters", type=int, help="number of domains (default: the truth's, on synthetic data)"
    )
    run.add_argument("--out", type=Path, help="write the annotated AnnData here (.h5ad)")
    run.add_argument("--plot", type=Path, help="write a domain map here (.png)")
    run.add_argument("--layer", help="layer holding raw counts instead of X")
    run.add_argument("--truth", help="obs column with known domains: print ARI/NMI against it")
    run.add_argument("--radii", type=float, nargs="+", help="spatial radii (default: chosen from the data)")
    run.add_argument("--unit", default="auto", choices=get_args(Unit), help="unit of the radii")
    run.add_argument("--spatial-key", default="spatial", help="obsm key of the coordinates")
    run.add_argument("--library-key", help="obs column naming each spot's slide (graphs per slide)")
    run.add_argument("--cluster-method", default="gmm", choices=get_args(ClusterMethod), help="clusterer")
    run.add_argument("--epochs", type=int, help="training epochs")
    run.add_argument(
        "--restarts", type=int, default=1, help="vote over this many trainings (3: steadier, 3x the time)"
    )
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--seed", type=int, default=0, help="random state")
    return p


def _score(adata, truth: str, key: str) -> str:
    from ._scores import agreement

    score = agreement(adata.obs, key, truth)
    if score is None:
        return f"ARI n/a: no spot has a value in obs[{truth!r}]"
    return f"ARI {score.ari:.3f}  NMI {score.nmi:.3f}  ({score.n_annotated} labelled spots)"


def _path_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given, checked before any work (None: nothing)."""
    if args.input is not None and not args.input.is_file():
        return f"input file {str(args.input)!r} not found"
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None and path.is_dir():
            return f"{flag} {str(path)!r} is a folder: give a file name"
        if path is not None and not path.absolute().parent.is_dir():
            return f"{flag} {str(path)!r}: its folder {str(path.absolute().parent)!r} does not exist"
    if args.plot is not None:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if args.plot.suffix.lstrip(".").lower() not in formats:
            return f"--plot {str(args.plot)!r}: the name must end in one of {', '.join(sorted(formats))}"
    return None


def _read(path: Path):
    """The AnnData of ``path``, or a message saying why it cannot be read."""
    import anndata as ad

    try:
        return ad.read_h5ad(path), None
    except Exception as e:  # noqa: BLE001 - h5py and anndata raise many kinds for a file that is not .h5ad
        return None, f"cannot read {str(path)!r} as an .h5ad file ({type(e).__name__}: {e})"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tsstc-sc`` command."""
    args = _parser().parse_args(argv)
    problem = _path_problem(args)
    if problem is not None:
        sys.stderr.write(f"tsstc-sc: {problem}\n")
        return 2
    import time

    import tsstc_sc

    if args.input is None:
        adata = tsstc_sc.datasets.synthetic_tissue()
        truth = args.truth or "domain"
        source = f"synthetic tissue ({adata.n_obs} spots, {adata.n_vars} genes)"
    else:
        adata, problem = _read(args.input)
        if problem is not None:
            sys.stderr.write(f"tsstc-sc: {problem}\n")
            return 2
        truth = args.truth
        source = str(args.input)
    if truth is not None and truth not in adata.obs:
        sys.stderr.write(f"tsstc-sc: --truth {truth!r} is not an obs column of {source}\n")
        return 2
    n_clusters = args.n_clusters
    if n_clusters is None and truth is not None:
        n_clusters = adata.obs[truth].nunique()
    if n_clusters is None:
        sys.stderr.write("tsstc-sc: pass --n-clusters (or --truth COLUMN to use its number of domains)\n")
        return 2
    kwargs = {"restarts": args.restarts, **({"epochs": args.epochs} if args.epochs is not None else {})}
    start = time.perf_counter()
    try:
        if args.plot:  # the map needs the coordinates: say so before training, not after
            from ._validation import check_spatial

            check_spatial(adata, args.spatial_key)
        tsstc_sc.tl.tsstc(
            adata,
            args.radii,
            n_clusters=n_clusters,
            layer=args.layer,
            unit=args.unit,
            spatial_key=args.spatial_key,
            library_key=args.library_key,
            cluster_method=args.cluster_method,
            device=args.device,
            random_state=args.seed,
            **kwargs,
        )
    # the package's own messages say what to change (MemoryError: radii too large; RuntimeError: Leiden
    # cannot reach n_clusters; FloatingPointError: the loss diverged)
    except (KeyError, TypeError, ValueError, MemoryError, RuntimeError, FloatingPointError) as e:
        sys.stderr.write(f"tsstc-sc: {e.args[0] if e.args else e}\n")
        return 2
    elapsed = time.perf_counter() - start
    lines = [
        f"TSstc on {source}: {n_clusters} domains in {elapsed:.1f} s on {adata.uns['tsstc']['params']['device']}"
    ]
    if truth is not None:
        lines.append(_score(adata, truth, "tsstc"))
    sys.stdout.write("\n".join(lines) + "\n")  # the result first, whatever happens to the files
    try:
        if args.out:  # before the plot: the result is kept whatever happens to the figure
            adata.write_h5ad(args.out)
            sys.stdout.write(f"annotated AnnData written to {args.out}\n")
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")
            fig = tsstc_sc.pl.domains(
                adata,
                groundtruth=truth,
                spatial_key=args.spatial_key,
                library_key=args.library_key,
                show=False,
                return_fig=True,
            )
            fig.savefig(args.plot, dpi=120, bbox_inches="tight")
            sys.stdout.write(f"domain map written to {args.plot}\n")
    except OSError as e:
        sys.stderr.write(f"tsstc-sc: could not write the results ({e})\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
