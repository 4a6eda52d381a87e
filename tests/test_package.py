"""Package-level promises: a light import, and the command line a pipeline user runs."""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

import tsstc_sc
from tsstc_sc._cli import main


def test_import_does_not_load_torch():
    code = "import sys, tsstc_sc; tsstc_sc.pp, tsstc_sc.tl.tsstc; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_runs_on_an_h5ad_and_scores_against_truth(tmp_path, capsys):
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=400, n_genes=200, n_domains=4)
    adata.write_h5ad(tmp_path / "in.h5ad")
    code = main(
        ["run", str(tmp_path / "in.h5ad"), "--truth", "domain", "--epochs", "5", "--restarts", "2",
         "--out", str(tmp_path / "out.h5ad"), "--plot", str(tmp_path / "map.png")]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    out = ad.read_h5ad(tmp_path / "out.h5ad")
    ari = adjusted_rand_score(out.obs["domain"], out.obs["tsstc"])
    assert "4 domains" in printed and f"ARI {ari:.3f}" in printed and "(400 labelled spots)" in printed
    assert out.obs["tsstc"].nunique() == 4 and (tmp_path / "map.png").stat().st_size > 10_000
    assert (out.uns["tsstc"]["params"]["epochs"], out.uns["tsstc"]["params"]["restarts"]) == (5, 2)


def test_cli_without_input_runs_the_synthetic_tissue_with_the_flags_given(tmp_path, capsys):
    out_path = tmp_path / "out.h5ad"
    argv = [
        "run",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--radii",
        "2",
        "3",
        "--device",
        "cpu",
        "--out",
        str(out_path),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    out = ad.read_h5ad(out_path)
    params = out.uns["tsstc"]["params"]
    assert (params["epochs"], params["random_state"], list(params["radii"]), params["device"]) == (
        2,
        3,
        [2, 3],
        "cpu",
    )
    assert out.obs["tsstc"].nunique() == out.obs["domain"].nunique()  # K from the tissue's own domains
    ari = adjusted_rand_score(out.obs["domain"], out.obs["tsstc"])
    assert f"synthetic tissue ({out.n_obs} spots" in printed and f"ARI {ari:.3f}" in printed


def test_cli_reads_counts_from_the_layer_given(tmp_path, capsys):
    import scanpy as sc

    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=3)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)  # X is no longer raw counts
    adata.write_h5ad(tmp_path / "in.h5ad")
    base = ["run", str(tmp_path / "in.h5ad"), "--n-clusters", "3", "--epochs", "2"]
    assert main(base) == 2
    assert "layer='counts'" in capsys.readouterr().err  # the package's message says what to pass
    assert main([*base, "--layer", "counts", "--out", str(tmp_path / "out.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "out.h5ad").uns["tsstc"]["params"]["layer"] == "counts"


def test_cli_says_when_no_spot_is_annotated(tmp_path, capsys):
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=3)
    adata.obs["truth"] = pd.Series(pd.NA, index=adata.obs_names, dtype="string")
    adata.write_h5ad(tmp_path / "in.h5ad")
    assert (
        main(["run", str(tmp_path / "in.h5ad"), "--truth", "truth", "--n-clusters", "3", "--epochs", "2"])
        == 0
    )
    assert "ARI n/a: no spot has a value in obs['truth']" in capsys.readouterr().out  # sklearn: 1.000


def test_cli_asks_for_the_number_of_domains(tmp_path, capsys):
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    adata.write_h5ad(tmp_path / "in.h5ad")
    assert main(["run", str(tmp_path / "in.h5ad")]) == 2
    assert "--n-clusters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--truth", "nosuch"], "obs column"), (["--n-clusters", "3", "--epochs", "0"], "epochs")],
)
def test_cli_explains_bad_arguments(tmp_path, capsys, args, message):
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    adata.write_h5ad(tmp_path / "in.h5ad")
    assert main(["run", str(tmp_path / "in.h5ad"), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_explains_errors_raised_while_training(tmp_path, capsys, monkeypatch):
    from tsstc_sc import _spatial_graphs

    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=100, n_genes=100, n_domains=2)
    adata.write_h5ad(tmp_path / "in.h5ad")
    run = ["run", str(tmp_path / "in.h5ad"), "--epochs", "1"]
    assert main([*run, "--n-clusters", "95", "--cluster-method", "leiden"]) == 2
    assert "Leiden found fewer than 95 clusters" in capsys.readouterr().err
    monkeypatch.setattr(_spatial_graphs, "_physical_memory", lambda: 1000)  # a machine with 1 kB
    assert main([*run, "--n-clusters", "2"]) == 2
    assert "Use smaller radii" in capsys.readouterr().err


def test_cli_checks_its_paths_before_training(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.h5ad"), "--n-clusters", "3"]) == 2
    assert "missing.h5ad" in capsys.readouterr().err
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    adata.write_h5ad(tmp_path / "in.h5ad")
    for flag in ("--plot", "--out"):
        args = ["run", str(tmp_path / "in.h5ad"), "--n-clusters", "3", flag, str(tmp_path / "no" / "x")]
        assert main(args) == 2
        assert "folder" in capsys.readouterr().err


def test_cli_refuses_files_it_cannot_use_before_training(tmp_path, capsys):
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150)
    adata.write_h5ad(tmp_path / "in.h5ad")
    (tmp_path / "text.h5ad").write_text("not an h5ad")
    (tmp_path / "folder").mkdir()
    del adata.obsm["spatial"]
    adata.write_h5ad(tmp_path / "grid_only.h5ad")  # trains on the array grid, but a map needs coordinates
    run = ["run", str(tmp_path / "in.h5ad"), "--n-clusters", "3"]
    for argv, message in [
        (["run", str(tmp_path / "text.h5ad"), "--n-clusters", "3"], "cannot read"),
        ([*run, "--out", str(tmp_path / "folder")], "is a folder"),
        ([*run, "--plot", str(tmp_path / "map.xyz")], "must end in one of"),
        (
            ["run", str(tmp_path / "grid_only.h5ad"), "--n-clusters", "3", "--plot", str(tmp_path / "m.png")],
            "obsm",
        ),
    ]:
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_cli_passes_the_slide_and_clustering_options(tmp_path, capsys):
    one = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=3, random_state=0)
    two = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=3, random_state=1)
    slides = ad.concat({"a": one, "b": two}, label="slide", index_unique="-")
    slides.obsm["xy"] = slides.obsm.pop("spatial")
    slides.write_h5ad(tmp_path / "in.h5ad")
    argv = ["run", str(tmp_path / "in.h5ad"), "--n-clusters", "3", "--epochs", "2", "--library-key", "slide",
            "--spatial-key", "xy", "--unit", "nn", "--cluster-method", "kmeans", "--out", str(tmp_path / "o.h5ad"),
            "--plot", str(tmp_path / "m.png")]  # fmt: skip
    assert main(argv) == 0
    params = ad.read_h5ad(tmp_path / "o.h5ad").uns["tsstc"]["params"]
    assert (params["library_key"], params["spatial_key"], params["unit"], params["cluster_method"]) == (
        "slide",
        "xy",
        "nn",
        "kmeans",
    )


@pytest.mark.parametrize(("flag", "value"), [("--unit", "pixel"), ("--cluster-method", "dbscan")])
def test_cli_lists_the_choices_of_an_option(capsys, flag, value):
    with pytest.raises(SystemExit):
        main(["run", flag, value])
    assert f"invalid choice: '{value}'" in capsys.readouterr().err


def test_cli_rejects_unknown_commands():
    with pytest.raises(SystemExit):
        main(["fly"])


def test_every_public_function_has_a_runnable_example():
    public = [
        getattr(module, name)
        for module in (tsstc_sc.pp, tsstc_sc.tl, tsstc_sc.pl, tsstc_sc.datasets)
        for name in module.__all__
    ]
    missing = [obj.__qualname__ for obj in public if ">>> " not in (obj.__doc__ or "")]
    assert not missing, f"no doctest example in {missing}"
