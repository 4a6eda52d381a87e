"""Plots: structural assertions on what is drawn (not only that it ran)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pytest

import tsstc_sc

mpl.use("Agg")


@pytest.fixture(scope="module")
def fitted():
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300, n_genes=150, n_domains=4, random_state=2)
    tsstc_sc.tl.tsstc(adata, n_clusters=4, epochs=4, progress_bar=False)
    return adata


def test_domains_beside_truth_reports_the_ari(fitted):
    from sklearn.metrics import adjusted_rand_score

    axes = tsstc_sc.pl.domains(fitted, groundtruth="domain", show=False)
    assert len(axes) == 2
    ari = adjusted_rand_score(fitted.obs["domain"], fitted.obs["tsstc"])
    assert axes[1].get_title() == f"tsstc (ARI {ari:.3f})"
    assert all(a.yaxis_inverted() for a in axes)
    # one point per spot, coloured by domain; colours shared with scanpy through uns
    offsets = axes[1].collections[0].get_offsets()
    assert len(offsets) == fitted.n_obs and len(fitted.uns["tsstc_colors"]) == 4


def test_scale_weights_one_panel_per_view_with_the_weights_as_colours(fitted):
    axes = tsstc_sc.pl.scale_weights(fitted, show=False)
    names = list(fitted.uns["tsstc"]["scale_weight_names"])
    assert [a.get_title() for a in axes] == names
    for v, a in enumerate(axes):
        drawn = np.sort(np.asarray(a.collections[0].get_array()))
        np.testing.assert_allclose(drawn, np.sort(fitted.obsm["tsstc_scale_weights"][:, v]), rtol=1e-6)
    assert not any(c.startswith("tsstc weight") for c in fitted.obs)  # the user's obs is untouched


def test_loss_curves_follow_the_history(fitted):
    fig = tsstc_sc.pl.loss(fitted, show=False, return_fig=True)
    total, recon, reg = fig.axes[:3]
    np.testing.assert_allclose(total.lines[0].get_ydata(), fitted.uns["tsstc"]["loss"]["total"])
    np.testing.assert_allclose(recon.lines[0].get_ydata(), fitted.uns["tsstc"]["loss"]["reconstruction"])
    assert len(reg.lines) == len(fitted.uns["tsstc"]["scale_weight_names"]) - 1


def test_plots_explain_missing_results():
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=200, n_genes=120)
    for plot in (tsstc_sc.pl.scale_weights, tsstc_sc.pl.loss):
        with pytest.raises(KeyError, match=r"tl\.tsstc"):
            plot(adata, show=False)
