"""Workflows compose the layers; they return results and never print."""
