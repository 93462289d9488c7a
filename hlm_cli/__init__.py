"""hlm: Bayesian hierarchical models from lme4-style formulas.

The Python API (:mod:`hlm_cli.api`: ``fit``, ``load``, ``compare``, ``batch``, ``Fit``) is
imported on first use, so ``import hlm_cli`` (and ``hlm --help``) stay instant.
"""

__version__ = "0.1.0"

_API = ("fit", "load", "compare", "batch", "sbc", "Fit", "HlmError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        # importlib, not `from hlm_cli import api`: the API is loaded on first use only, and
        # is no static dependency of the modules that read __version__ (import contracts)
        import importlib

        return getattr(importlib.import_module("hlm_cli.api"), name)
    raise AttributeError(f"module 'hlm_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
