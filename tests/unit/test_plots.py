"""The fast figure helpers: KDE integrates to one and handles wide bandwidths."""

import numpy as np

from hlm_cli.outputs.plots import _hdi, kde_line


def test_kde_integrates_to_one_even_with_few_points():
    rng = np.random.default_rng(0)
    for x in (rng.normal(size=5000), rng.normal(size=7), np.array([0.0, 0.0, 1.0])):
        grid = np.linspace(-6, 6, 256)
        d = kde_line(x, grid)
        assert d.shape == grid.shape
        assert abs(d.sum() * (grid[1] - grid[0]) - 1) < 0.05


def test_hdi_matches_arviz_stats():
    import arviz_stats as azs

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=4000), rng.gamma(2.0, size=4000)])
    lo, hi = _hdi(x)
    for j in range(2):
        np.testing.assert_allclose([lo[j], hi[j]], azs.hdi(x[:, j], prob=0.94), rtol=1e-12)
