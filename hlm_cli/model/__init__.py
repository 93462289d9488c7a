"""The model layer: families, priors, parameterization and the PyMC builder."""
