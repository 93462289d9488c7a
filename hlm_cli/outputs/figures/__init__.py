"""Every figure hlm draws, one module per concern (files under ``OUT/plots/`` unless noted).

================  ==========================================================================
module            figures
================  ==========================================================================
convergence       trace.png, rank.png
effects           posteriors.png, forest.png, conditional_<x>[_x_<by>].png
ppc               ppc.png, prior_ppc.png, ppc_rootogram.png, pred_vs_obs.png
pooling           shrinkage_<factor>.png; ``hlm pooling``'s pooling_<factor>.png
contrast          ``hlm contrast``'s contrast_<term>.png
identifiability   identifiability.png, pairs.png
loo               ``hlm loo``'s pareto_k.png and compare.png
================  ==========================================================================

Each figure has two halves: a function that computes what is drawn (plain numpy/pandas,
testable without matplotlib) and one that draws it with :func:`._base.figure` and writes it
with :func:`._base.save`. Numbers a figure prints or draws as a parameter's estimate are
summary.csv's (:func:`.effects.estimates`).
"""

from hlm_cli.outputs.figures._base import CI_PROB, draws, kde_line, save, slug, thin
from hlm_cli.outputs.figures.contrast import contrast
from hlm_cli.outputs.figures.convergence import rank, trace
from hlm_cli.outputs.figures.effects import (
                                             Effect,
                                             ForestTerm,
                                             Panel,
                                             conditional,
                                             conditional_effects,
                                             effect_grid,
                                             effect_pairs,
                                             estimates,
                                             forest,
                                             forest_terms,
                                             panel_title,
                                             posterior_panels,
                                             posteriors,
                                             predictor_kinds,
                                             shown_as_levels,
)
from hlm_cli.outputs.figures.identifiability import ident_series, identifiability, pairs
from hlm_cli.outputs.figures.loo import loo_compare, pareto_k
from hlm_cli.outputs.figures.pooling import (
                                             Shrinkage,
                                             group_means,
                                             pooling_estimates,
                                             shrinkage,
                                             shrinkage_data,
)
from hlm_cli.outputs.figures.ppc import Predictions, ppc, pred_vs_obs, predictions, rootogram

__all__ = [
    "CI_PROB", "Effect", "ForestTerm", "Panel", "Predictions", "Shrinkage", "conditional", "conditional_effects", "contrast",
    "draws", "effect_grid", "effect_pairs", "estimates", "forest", "forest_terms", "group_means", "ident_series",
    "identifiability", "kde_line", "loo_compare", "pairs", "pareto_k", "panel_title", "pooling_estimates", "posterior_panels", "posteriors", "ppc",
    "pred_vs_obs", "predictions", "predictor_kinds", "rank", "rootogram", "save", "shown_as_levels", "shrinkage",
    "shrinkage_data", "slug", "thin", "trace",
]
