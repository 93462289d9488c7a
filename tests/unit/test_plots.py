"""The convergence and predictive-check figures: the KDE they draw, and files they write."""

import numpy as np
import pytest


def test_kde_integrates_to_one_even_with_few_points():
    from hlm_cli.outputs.figures import kde_line

    rng = np.random.default_rng(0)
    for x in (rng.normal(size=5000), rng.normal(size=7), np.array([0.0, 0.0, 1.0])):
        grid = np.linspace(-6, 6, 256)
        d = kde_line(x, grid)
        assert d.shape == grid.shape
        assert abs(d.sum() * (grid[1] - grid[0]) - 1) < 0.05


def _tree(discrete=False, chains=2, draws=150):
    import xarray as xr

    rng = np.random.default_rng(2)
    n = 30
    post = xr.Dataset({
        "Intercept": (("chain", "draw"), rng.normal(1, 0.1, (chains, draws))),
        "b": (("chain", "draw", "b_dim"), rng.normal(0, 1, (chains, draws, 3))),
    }, coords={"b_dim": ["u", "v", "w"]})
    y = rng.poisson(3, n) if discrete else rng.normal(size=n)
    sims = rng.poisson(3, (chains, draws, n)) if discrete else rng.normal(size=(chains, draws, n))
    return xr.DataTree.from_dict({
        "posterior": post,
        "posterior_predictive": xr.Dataset({"y": (("chain", "draw", "obs"), sims)}),
        "observed_data": xr.Dataset({"y": (("obs",), y)}),
    })


def test_scalar_series_splits_vectors_by_coordinate():
    from hlm_cli.outputs.figures.convergence import scalar_series

    series = scalar_series(_tree(), ["Intercept", "b", "missing"])
    assert [label for label, _ in series] == ["Intercept", "b[u]", "b[v]", "b[w]"]
    assert all(arr.shape == (2, 150) for _, arr in series)
    assert len(scalar_series(_tree(), ["b"], limit=2)) == 2


@pytest.mark.parametrize("discrete", [False, True])
def test_convergence_and_ppc_figures_write_png_and_svg(tmp_path, discrete):
    from hlm_cli.outputs import figures as F

    tree = _tree(discrete)
    paths = F.trace(tree, ["Intercept", "b"], tmp_path / "trace.png", svg=True)
    paths += F.rank(tree, ["Intercept", "b"], tmp_path / "rank.png")
    paths += F.ppc(tree, tmp_path / "ppc.png", discrete=discrete)
    assert [p.name for p in paths] == ["trace.png", "trace.svg", "rank.png", "ppc.png"]
    for p in paths:
        head = p.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" if p.suffix == ".png" else head.startswith(b"<?xml")
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left
    assert F.ppc(tree, tmp_path / "ppc.png", formats=("svg",), discrete=discrete) == [tmp_path / "ppc.svg"]


def test_long_parameter_names_wrap_at_the_bar():
    from hlm_cli.outputs.figures.convergence import wrap_label

    assert wrap_label("cor(Intercept,Days|Subject)") == "cor(Intercept,Days\n|Subject)"
    assert wrap_label("sigma") == "sigma"
