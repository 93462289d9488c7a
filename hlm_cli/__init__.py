"""hlm: Bayesian hierarchical models from lme4-style formulas."""

__version__ = "0.1.0"
