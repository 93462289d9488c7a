"""Reading a run directory back: the one door the commands after ``hlm fit`` go through.

For now the functions live in :mod:`hlm_cli.model.linpred` and are re-exported here, so that
every caller already imports them from their future home (issue 17 moves them here).
"""

from __future__ import annotations

from hlm_cli.model.linpred import RunContext, load_run, open_tree

__all__ = ["RunContext", "load_run", "open_tree"]
