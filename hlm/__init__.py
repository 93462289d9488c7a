"""``import hlm``: the Python API of hlm (see docs/python.md).

>>> import hlm
>>> fit = hlm.fit("sample_data/cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)")  # doctest: +SKIP

The names are those of :mod:`hlm_cli.api`, imported on first use so that ``import hlm`` is
instant: ``fit``, ``load``, ``compare``, ``batch``, ``Fit`` and ``HlmError``.
"""

from hlm_cli import __version__

_API = ("fit", "load", "compare", "batch", "sbc", "Fit", "HlmError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        # importlib, not `from hlm_cli import api`: the API is loaded on first use only, and
        # is no static dependency of the modules that read __version__ (import contracts)
        import importlib

        return getattr(importlib.import_module("hlm_cli.api"), name)
    raise AttributeError(f"module 'hlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
