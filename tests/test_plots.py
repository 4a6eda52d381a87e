"""Plots: structural assertions on what is drawn (not only that it ran)."""

from __future__ import annotations

import anndata as ad
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


def _spots_drawn(ax, adata) -> np.ndarray:
    """The spot behind each point of the panel's scatter, found by its coordinates (scanpy may
    reorder the points)."""
    where = {tuple(p): i for i, p in enumerate(np.asarray(adata.obsm["spatial"], dtype=np.float64))}
    assert len(where) == adata.n_obs  # coordinates identify the spots
    return np.array([where[tuple(p)] for p in np.asarray(ax.collections[0].get_offsets(), dtype=np.float64)])


def test_domains_beside_truth_reports_the_ari(fitted):
    from matplotlib.colors import to_rgba
    from sklearn.metrics import adjusted_rand_score

    axes = tsstc_sc.pl.domains(fitted, groundtruth="domain", show=False)
    assert len(axes) == 2
    ari = adjusted_rand_score(fitted.obs["domain"], fitted.obs["tsstc"])
    assert axes[1].get_title() == f"tsstc (ARI {ari:.3f})"
    assert all(a.yaxis_inverted() for a in axes)
    # every spot drawn once at its place, in its domain's colour, shared with scanpy through uns
    for a, column in zip(axes, ["domain", "tsstc"], strict=True):
        spots = _spots_drawn(a, fitted)
        assert sorted(spots) == list(range(fitted.n_obs))
        palette = fitted.uns[f"{column}_colors"]
        codes = fitted.obs[column].astype("category").cat.codes.to_numpy()[spots]
        expected = [to_rgba(palette[c]) for c in codes]
        np.testing.assert_allclose(a.collections[0].get_facecolors(), expected)
    assert len(fitted.uns["tsstc_colors"]) == 4


def test_a_palette_drawn_becomes_the_shared_colours(fitted):
    """As in scanpy, the colours of ``palette`` are the ones stored for later plots."""
    from matplotlib.colors import to_hex, to_rgba

    adata, default = fitted.copy(), fitted.copy()
    tsstc_sc.pl.domains(default, show=False)
    ax = tsstc_sc.pl.domains(adata, palette="Set1", show=False)
    stored = adata.uns["tsstc_colors"]
    assert stored != default.uns["tsstc_colors"]
    assert set(stored) <= {to_hex(c) for c in mpl.colormaps["Set1"].colors}
    codes = adata.obs["tsstc"].cat.codes.to_numpy()[_spots_drawn(ax, adata)]
    np.testing.assert_allclose(ax.collections[0].get_facecolors(), [to_rgba(stored[c]) for c in codes])


def test_domains_says_no_ari_for_a_slide_without_annotated_spots(fitted):
    import anndata as ad

    both = ad.concat({"s1": fitted, "s2": fitted}, label="slide", index_unique="-")
    both.obs["truth"] = both.obs["domain"].astype(str).where(both.obs["slide"] == "s1")
    axes = tsstc_sc.pl.domains(both, groundtruth="truth", library_key="slide", show=False)
    titles = [a.get_title() for a in axes]
    assert "s2: tsstc (ARI n/a: no annotated spots)" in titles and "s1: tsstc (ARI" in " ".join(titles)


def test_titles_can_be_given(fitted):
    axes = tsstc_sc.pl.domains(fitted, groundtruth="domain", title=["truth", "ours"], show=False)
    assert [a.get_title() for a in axes] == ["truth", "ours"]
    with pytest.raises(ValueError, match="title"):
        tsstc_sc.pl.domains(fitted, title=["a", "b", "c"], show=False)


def test_scale_weights_one_panel_per_view_with_the_weights_as_colours(fitted):
    axes = tsstc_sc.pl.scale_weights(fitted, show=False)
    names = list(fitted.uns["tsstc"]["scale_weight_names"])
    assert [a.get_title() for a in axes] == names
    for v, a in enumerate(axes):
        drawn = np.asarray(a.collections[0].get_array())
        spots = _spots_drawn(a, fitted)  # each spot's own weight on view v, wherever scanpy drew it
        np.testing.assert_allclose(drawn, fitted.obsm["tsstc_scale_weights"][spots, v], rtol=1e-6)
    assert not any(c.startswith("tsstc weight") for c in fitted.obs)  # the user's obs is untouched


def test_loss_curves_follow_the_history(fitted):
    fig = tsstc_sc.pl.loss(fitted, show=False, return_fig=True)
    total, recon, reg = fig.axes[:3]
    np.testing.assert_allclose(total.lines[0].get_ydata(), fitted.uns["tsstc"]["loss"]["total"])
    np.testing.assert_allclose(recon.lines[0].get_ydata(), fitted.uns["tsstc"]["loss"]["reconstruction"])
    regularization = np.asarray(fitted.uns["tsstc"]["loss"]["regularization"])  # epochs x scales
    assert len(reg.lines) == regularization.shape[1] == len(fitted.uns["tsstc"]["scale_weight_names"]) - 1
    for scale, line in enumerate(reg.lines):
        np.testing.assert_allclose(line.get_ydata(), regularization[:, scale])


def test_plots_explain_missing_results():
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=200, n_genes=120)
    for plot in (tsstc_sc.pl.scale_weights, tsstc_sc.pl.loss):
        with pytest.raises(KeyError, match=r"tl\.tsstc"):
            plot(adata, show=False)


def test_spatial_plots_explain_missing_coordinates(fitted):
    for plot in (tsstc_sc.pl.domains, tsstc_sc.pl.scale_weights):
        with pytest.raises(KeyError, match=r"No spatial coordinates in `adata.obsm\['xy'\]`"):
            plot(fitted, spatial_key="xy", show=False)
        with pytest.raises(KeyError, match="library_key='slide'"):
            plot(fitted, library_key="slide", show=False)


@pytest.fixture(scope="module")
def two_slides():
    import anndata as ad

    slides = {
        name: tsstc_sc.datasets.synthetic_tissue(n_spots=200, n_genes=120, n_domains=4, random_state=seed)
        for seed, name in enumerate(["A", "B"])
    }
    adata = ad.concat(slides, label="slide", index_unique="-")
    adata.obs["tsstc"] = adata.obs["domain"].cat.rename_categories(lambda c: f"d{c[-1]}")
    adata.obs["tsstc"] = adata.obs["tsstc"].where(adata.obs["slide"] == "A", "d1")  # slide B: one domain
    return adata


def test_domains_one_row_per_library_same_colour_per_domain(two_slides):
    from sklearn.metrics import adjusted_rand_score

    dtypes = two_slides.obs.dtypes.copy()
    axes = tsstc_sc.pl.domains(two_slides, groundtruth="domain", library_key="slide", show=False)
    assert len(axes) == 4  # 2 slides x (annotation, domains)
    for row, slide in enumerate(["A", "B"]):
        obs = two_slides.obs[two_slides.obs["slide"] == slide]
        ari = adjusted_rand_score(obs["domain"], obs["tsstc"])
        assert axes[2 * row + 1].get_title() == f"{slide}: tsstc (ARI {ari:.3f})"
        assert len(axes[2 * row].collections[0].get_offsets()) == len(obs)
    # "d1" is drawn in the same colour on both slides, the one stored for scanpy in uns
    d1 = mpl.colors.to_rgba(two_slides.uns["tsstc_colors"][0])
    for a in (axes[1], axes[3]):
        legend = {
            t.get_text(): h.get_facecolor()[0]
            for t, h in zip(a.get_legend().texts, a.get_legend().legend_handles, strict=True)
        }
        np.testing.assert_allclose(legend["d1"], d1)
    assert two_slides.obs.dtypes.equals(dtypes)  # the user's obs is not converted


def test_domains_rejects_ax_with_several_panels_and_wrong_titles_leaving_adata_unchanged(two_slides):
    import matplotlib.pyplot as plt
    from anndata.tests.helpers import assert_equal

    adata = two_slides.copy()
    for column in ("tsstc", "domain"):  # a plot that draws stores its colours here
        adata.uns.pop(f"{column}_colors", None)
    before = adata.copy()
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="single panel"):
        tsstc_sc.pl.domains(adata, library_key="slide", ax=ax, show=False)
    with pytest.raises(ValueError, match="one title per panel"):
        tsstc_sc.pl.domains(adata, groundtruth="domain", title=["one"], show=False)
    assert_equal(adata, before)


def test_domain_sizes_stacks_the_annotation_within_each_domain(two_slides):
    adata = two_slides.copy()
    adata.obs.loc[adata.obs_names[:10], "domain"] = np.nan  # unannotated spots are counted in grey
    ax = tsstc_sc.pl.domain_sizes(adata, groundtruth="domain", show=False)
    heights = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        heights[x] = heights.get(x, 0) + bar.get_height()
    expected = adata.obs["tsstc"].value_counts().reindex(adata.obs["tsstc"].cat.categories).to_numpy()
    np.testing.assert_array_equal([heights[i] for i in range(len(expected))], expected)
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert labels == [*adata.obs["domain"].cat.categories, "unannotated"]


def test_scale_degrees_boxes_are_the_graph_degrees():
    adata = tsstc_sc.datasets.synthetic_tissue(n_spots=300)
    tsstc_sc.pp.spatial_scales(adata, radii=[1.5, 3])
    ax = tsstc_sc.pl.scale_degrees(adata, show=False)
    for position, name in enumerate(adata.uns["tsstc_scales"]["scale_keys"], start=1):
        degree = np.diff(adata.obsp[f"{name}_connectivities"].indptr)
        # the median is the horizontal segment as wide as the box at this scale's position
        at = [line for line in ax.lines if np.isclose(np.mean(np.unique(line.get_xdata())), position)]
        width = np.ptp(next(line for line in at if len(line.get_xdata()) == 5).get_xdata())
        medians = [
            line.get_ydata()[0]
            for line in at
            if len(line.get_xdata()) == 2 and np.isclose(np.ptp(line.get_xdata()), width)
        ]
        assert medians == [np.median(degree)]
        assert (
            ax.get_xticklabels()[position - 1].get_text()
            == f"r={adata.uns['tsstc_scales']['radii'][position - 1]:g}"
        )
    with pytest.raises(KeyError, match="spatial_scales"):
        tsstc_sc.pl.scale_degrees(tsstc_sc.datasets.synthetic_tissue(n_spots=100), show=False)
    concatenated = ad.concat([adata, adata], uns_merge="first", index_unique="-")  # concat drops obsp
    with pytest.raises(ValueError, match=r"as after `anndata\.concat`"):
        tsstc_sc.pl.scale_degrees(concatenated, show=False)
