"""A closed parser for brms-style hypotheses over named model parameters.

``hlm hypothesis RUN "Treatment > 0" "genotype[ko] - genotype[wt] = 0"`` reads strings
typed by a user, so nothing here is ever handed to Python's ``eval``: the text is split
into tokens, parsed by a small recursive-descent parser into plain nodes, and evaluated
over numpy arrays of posterior draws. A name is accepted only if it is one of the model's
parameter labels (the summary's ``Intercept``, ``Treatment:Genotype``, ``genotype[ko]``,
``1|mouse[m01]``, ``1|mouse_sigma`` (also as printed: ``sd(Intercept|mouse)``),
``cor(Intercept,Days|Subject)``, ``sigma`` ...);
anything else (``__import__('os')``, ``Intercept.__class__``, ``open``) is refused with one
line naming it.

Labels contain ``:``, ``|``, ``[``, ``]``, ``(``, ``,`` and spaces, so the tokenizer does not
split on punctuation: at each position it takes the *longest* label that starts there and is
not followed by a name character (``Treatment:Genotype`` wins over ``Treatment``; in
``Treatmentx`` no label ends at a name boundary, so ``Treatmentx`` is an unknown name).

Grammar::

    hypothesis := expr OP expr              OP: '>' '>=' '<' '<=' '=' '=='
    expr       := term (('+' | '-') term)*
    term       := unary (('*' | '/') unary)*
    unary      := ('-' | '+') unary | primary
    primary    := NUMBER | LABEL | '(' expr ')'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from hlm_cli.errors import HlmError, closest_match

MAX_LENGTH = 2000  # characters in one hypothesis
MAX_DEPTH = 50  # nested parentheses / unary signs: no RecursionError on hostile input

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.]")
# what an unknown name looks like in an error message: up to the next operator or space
_WORD = re.compile(r"[^\s+\-*/()<>=]+(?:\([^()]*\))?")
_OPS = (">=", "<=", "==", "+", "-", "*", "/", "(", ")", ">", "<", "=")
COMPARISONS = {">": ">", ">=": ">", "<": "<", "<=": "<", "=": "=", "==": "="}


class HypothesisError(HlmError):
    """A hypothesis string that cannot be parsed, or names something that is not a parameter."""


@dataclass(frozen=True)
class Token:
    kind: str  # number, label, op, end
    text: str
    pos: int


# --------------------------------------------------------------------------------------------
# Nodes: only numbers, parameter labels and + - * / (binary and unary)


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Param:
    label: str


@dataclass(frozen=True)
class Neg:
    operand: object


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * /
    left: object
    right: object


@dataclass(frozen=True)
class Hypothesis:
    """``left OP right``, with OP one of ``>``, ``<``, ``=`` (``>=``/``<=``/``==`` normalised)."""

    text: str
    left: object
    op: str
    right: object

    @property
    def labels(self) -> list[str]:
        """Parameter labels used, in order of first appearance."""
        out: list[str] = []
        for side in (self.left, self.right):
            for lab in _labels(side):
                if lab not in out:
                    out.append(lab)
        return out


def _labels(node) -> list[str]:
    match node:
        case Param(label=lab):
            return [lab]
        case Neg(operand=x):
            return _labels(x)
        case BinOp(left=a, right=b):
            return _labels(a) + _labels(b)
    return []


# --------------------------------------------------------------------------------------------
# Tokenizer


def tokenize(text: str, labels: Iterable[str], aliases: dict[str, str] | None = None) -> list[Token]:
    """Split a hypothesis into numbers, known parameter labels and operators.

    Parameters
    ----------
    text : str
        The hypothesis as typed, e.g. ``"genotype[ko] - genotype[wt] = 0"``.
    labels : iterable of str
        Every parameter label of the model; only these are names.
    aliases : dict, optional
        Other names of labels (the printed ``sd(Intercept|mouse)`` for ``1|mouse_sigma``):
        matched like labels, tokenized as the label they stand for.

    Returns
    -------
    list of Token, ending with an ``end`` token.

    Raises
    ------
    HypothesisError
        For an unknown name or character, naming it and the closest parameter.
    """
    labels = list(labels)
    aliases = aliases or {}
    by_first: dict[str, list[str]] = {}
    for lab in sorted(set(labels) | set(aliases), key=len, reverse=True):  # longest first
        if lab:
            by_first.setdefault(lab[0], []).append(lab)
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        label = _match_label(text, pos, by_first.get(ch, ()))
        if label is not None:
            tokens.append(Token("label", aliases.get(label, label), pos))
            pos += len(label)
            continue
        if m := _NUMBER.match(text, pos):
            end = m.end()
            if end < len(text) and _NAME_CHAR.match(text[end]):  # "2x", "1e", "3__class__"
                raise _unknown_name(text, pos, labels)
            tokens.append(Token("number", m.group(), pos))
            pos = end
            continue
        op = next((o for o in _OPS if text.startswith(o, pos)), None)
        if op is not None:
            tokens.append(Token("op", op, pos))
            pos += len(op)
            continue
        raise _unknown_name(text, pos, labels)
    tokens.append(Token("end", "", len(text)))
    return tokens


def _match_label(text: str, pos: int, candidates) -> str | None:
    for lab in candidates:  # longest first
        if text.startswith(lab, pos):
            end = pos + len(lab)
            # a label must end at a name boundary: "Intercept.__class__" is not "Intercept"
            if end < len(text) and _NAME_CHAR.match(text[end]) and _NAME_CHAR.match(lab[-1]):
                continue
            return lab
    return None


def _unknown_name(text: str, pos: int, labels) -> HypothesisError:
    m = _WORD.match(text, pos)
    word = m.group() if m else text[pos]
    if not _NAME_CHAR.match(word[0]) and len(word) == 1:
        return _syntax(text, pos, f"unexpected character {word!r}")
    what = "a function call" if "(" in word else "attribute access" if re.search(r"\w\.\w*_", word) else None
    base = word.split("(")[0]
    msg = f"{word!r} is not a parameter of this model" + (f" ({what} is not allowed)" if what else "")
    return HypothesisError(
        f"hypothesis {text!r}: {msg}",
        hint=closest_match(base, list(dict.fromkeys(labels)), what="parameters")
        + "; operators: + - * / ( ) and one of > < =",
    )


def _syntax(text: str, pos: int, what: str) -> HypothesisError:
    shown = text if len(text) <= 120 else text[:117] + "..."
    caret = " " * min(pos, 120) + "^"
    return HypothesisError(
        f"hypothesis {shown!r}: syntax error at character {pos + 1}: {what}",
        hint=f'{shown}\n{caret}\nwrite e.g. "Treatment > 0" or "genotype[ko] - genotype[wt] = 0"',
    )


# --------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def accept(self, *ops: str) -> Token | None:
        t = self.tok
        if t.kind == "op" and t.text in ops:
            self.i += 1
            return t
        return None

    def fail(self, what: str) -> HypothesisError:
        return _syntax(self.text, self.tok.pos, what)

    def hypothesis(self) -> Hypothesis:
        left = self.expr()
        t = self.accept(*COMPARISONS)
        if t is None:
            if self.tok.kind == "end":
                raise self.fail("a hypothesis needs one of >, < or = (e.g. 'Treatment > 0')")
            raise self.fail(f"unexpected {self.tok.text!r}")
        right = self.expr()
        if self.tok.kind != "end":
            what = "only one comparison is allowed" if self.tok.text in COMPARISONS else f"unexpected {self.tok.text!r}"
            raise self.fail(what)
        return Hypothesis(" ".join(self.text.split()), left, COMPARISONS[t.text], right)

    def expr(self):
        node = self.term()
        while (t := self.accept("+", "-")) is not None:
            node = BinOp(t.text, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while (t := self.accept("*", "/")) is not None:
            node = BinOp(t.text, node, self.unary())
        return node

    def unary(self):
        if (t := self.accept("-", "+")) is not None:
            with self._nested():
                operand = self.unary()
            return Neg(operand) if t.text == "-" else operand
        return self.primary()

    def primary(self):
        t = self.tok
        if t.kind == "number":
            self.i += 1
            return Num(float(t.text))
        if t.kind == "label":
            self.i += 1
            return Param(t.text)
        if self.accept("("):
            with self._nested():
                node = self.expr()
            if not self.accept(")"):
                raise self.fail("expected ')'")
            return node
        if t.kind == "end":
            raise self.fail("the expression ends too early")
        raise self.fail(f"unexpected {t.text!r}")

    @contextmanager
    def _nested(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"more than {MAX_DEPTH} nested parentheses or signs")
        try:
            yield
        finally:
            self.depth -= 1


def parse(text: str, labels: Iterable[str]) -> Hypothesis:
    """Parse one hypothesis against the model's parameter labels.

    Parameters
    ----------
    text : str
        e.g. ``"Treatment > 0"``, ``"genotype[ko] - genotype[wt] = 0"``,
        ``"(1|mouse_sigma) / sigma < 0.5"``.
    labels : iterable of str
        The model's parameter labels.

    Returns
    -------
    Hypothesis

    Raises
    ------
    HypothesisError
        Unknown names, function calls, attribute access, stray characters, missing or
        repeated comparisons. Nothing in ``text`` is ever executed.
    """
    if not isinstance(text, str) or not text.strip():
        raise HypothesisError("empty hypothesis", hint='write e.g. "Treatment > 0"')
    if len(text) > MAX_LENGTH:
        raise HypothesisError(f"hypothesis is {len(text)} characters long (at most {MAX_LENGTH})", hint="split it into shorter hypotheses")
    labels = list(labels)
    return _Parser(text, tokenize(text, labels, display_aliases(labels))).hypothesis()


def display_aliases(labels: Iterable[str]) -> dict[str, str]:
    """The printed names of parameters that the table shows differently from the posterior:
    ``sd(Intercept|mouse)`` -> ``1|mouse_sigma``, ``sd(Days|Subject)`` -> ``Days|Subject_sigma``
    (correlations ``cor(Intercept,Days|Subject)`` are printed as they are named)."""
    from hlm_cli.formula.priors import sd_display_name

    labels = set(labels)
    return {sd_display_name(lab): lab for lab in labels
            if lab.endswith("_sigma") and "|" in lab and sd_display_name(lab) not in labels}


def evaluate(node, lookup: Callable[[str], np.ndarray]) -> np.ndarray:
    """Draws of an expression: numbers and parameter draws combined with numpy arithmetic.

    Parameters
    ----------
    node : Num, Param, Neg or BinOp
    lookup : callable
        Parameter label -> 1-D array of draws (all the same length).

    Returns
    -------
    numpy.ndarray
        Draws of the expression (a 0-d array for an expression with no parameters).
    """
    match node:
        case Num(value=v):
            return np.asarray(v, dtype=float)
        case Param(label=lab):
            return np.asarray(lookup(lab), dtype=float)
        case Neg(operand=x):
            return -evaluate(x, lookup)
        case BinOp(op=op, left=a, right=b):
            x, y = evaluate(a, lookup), evaluate(b, lookup)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _BINARY[op](x, y)
    raise TypeError(f"not an expression node: {type(node).__name__}")


_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def render(node, parent: int = 0) -> str:
    """Canonical text of an expression, with only the parentheses precedence needs."""
    match node:
        case Num(value=v):
            return f"{v:g}"
        case Param(label=lab):
            return lab
        case Neg(operand=x):
            return "-" + render(x, 3)
        case BinOp(op=op, left=a, right=b):
            p = _PREC[op]
            text = f"{render(a, p)} {op} {render(b, p + 1)}"
            return f"({text})" if p < parent else text
    raise TypeError(f"not an expression node: {type(node).__name__}")


def canonical(h: Hypothesis) -> str:
    """The hypothesis as tested, brms-style: ``LEFT - RIGHT OP 0`` (``LEFT OP 0`` as typed)."""
    if h.right == Num(0.0):
        return f"{render(h.left)} {h.op} 0"
    if isinstance(h.right, (Num, Param)):
        return f"{render(BinOp('-', h.left, h.right))} {h.op} 0"
    return f"{render(h.left, 1)} - ({render(h.right)}) {h.op} 0"


def difference(h: Hypothesis, lookup: Callable[[str], np.ndarray]) -> np.ndarray:
    """Draws of ``left - right``: the quantity brms's ``hypothesis()`` reports and tests against 0."""
    return np.asarray(evaluate(h.left, lookup) - evaluate(h.right, lookup), dtype=float)


__all__ = ["HypothesisError", "Hypothesis", "tokenize", "parse", "evaluate", "difference", "render", "canonical", "Num", "Param", "Neg", "BinOp"]
