"""lme4-style formulas: a closed parser and design-matrix builder."""

from hlm_cli.formula.parser import Formula, GroupTerm, Response, parse

__all__ = ["Formula", "GroupTerm", "Response", "parse"]
