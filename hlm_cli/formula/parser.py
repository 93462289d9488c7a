"""A closed parser for lme4/brms-style model formulas.

The formula text is tokenized and parsed here into plain dataclasses; nothing in it is ever
evaluated by Python. Every bare name must be a data column, and every called name must be in
:data:`ALLOWED_FUNCTIONS`; anything else (attribute access such as ``os.system``, ``open``,
``__import__``, subscripts, lambdas) is refused with a :class:`~hlm_cli.errors.FormulaError`
before any data is touched. The accepted formula is then re-written as canonical text for
`formulae` (Bambi's formula engine), which builds the design matrices with its own small
interpreter in a namespace holding only the allow-list (see :mod:`hlm_cli.formula.design`).

Column names that are not plain ``letters, digits, _ and .`` (spaces, non-ASCII letters) are
written in backticks, as in R and formulae: ``y ~ `cell line` + `Größe```. Python keywords
and builtins (``yield``, ``class``, ``sum``) are ordinary column names: they are looked up in
the data, never evaluated. A formula is limited to :data:`MAX_DEPTH` nested brackets and
:data:`MAX_TERMS` terms, so that no parser (this one or formulae's) can run out of stack.

Grammar (R's ``^`` is written ``**`` for formulae; ``%in%`` is treated as ``:``)::

    formula   := [lhs] '~' terms
    lhs       := expr ['|' addition ('+' addition)*]        addition: se(COL[, sigma=TRUE]) | trials(COL)
                 | cens(COL[, Y2]) | trunc(lb = NUM|COL, ub = NUM|COL) | weights(COL[, type = "loglik"])
    terms     := ['-'] term (('+' | '-') term)*
    term      := product
    product   := inter (('*' | '/') inter)*
    inter     := power ((':' | '%in%') power)*
    power     := atom [('^' | '**') INT]
    atom      := '(' terms ['|' | '||' factor] ')' | COV '(' terms '|' factor ')' | ar | '0' | '1' | NAME | `QUOTED NAME` | call
    COV       := 'ar1' | 'cs' | 'diag'                        structured group covariances (glmmTMB)
    ar        := 'ar' '(' 'time' '=' NAME ',' 'gr' '=' NAME [',' 'p' '=' 1] ')'   residual AR(1) (brms)
    factor    := NAME ((':' | '/') NAME)*
    call      := FUNC '(' [arg (',' arg)*] ')'                arg: expr | NAME '=' expr
    expr      := arithmetic over NUMBER, STRING, NAME, call, '[' literals ']', unary -, (+ - * / ** ^)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hlm_cli.errors import FormulaError

# Transforms users expect in formulas. Each maps to a numpy ufunc or a formulae transform in
# hlm_cli.formula.design.SAFE_NAMESPACE; nothing outside this set can be called.
ALLOWED_FUNCTIONS = frozenset(
    {
        # formulae's own (stateful) transforms and codings
        "C", "I", "scale", "center", "standardize", "offset", "p", "prop", "proportion",
        # numpy elementwise math
        "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "sin", "cos", "tan",
        "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "floor", "ceil", "round",
        "logit", "expit", "inv_logit", "square", "sign",
        # splines: penalized smooths (hlm_cli.formula.smooths) and plain bases
        "s", "bs", "cr",
        # responses and additions (left-hand side only)
        "cbind", "se", "trials", "cens", "trunc", "weights",
        # a factor's level order (rewritten to the plain column by the parser, see LevelOrder)
        "relevel",
    }
)
LHS_ONLY = frozenset({"cbind", "se", "trials", "cens", "trunc", "weights"})
ADDITIONS = ("se", "trials", "cens", "trunc", "weights")  # brms's addition terms after '|'
WEIGHT_TYPES = ("precision", "loglik")
# structured covariances of a group term, written around it as glmmTMB and lme4 2.0 do:
# ar1(time | id), cs(1 + x | g), diag(x | g) (see docs/covariance.md)
COVARIANCE_STRUCTURES = frozenset({"ar1", "cs", "diag"})
_KEYWORD_LITERALS = {"TRUE": "True", "FALSE": "False", "True": "True", "False": "False"}
MAX_DEPTH = 50  # nested brackets
MAX_TERMS = 300  # operators joining terms, and population-level terms after expanding * and ^
# a column name formulae reads bare; any other is passed to it in backticks
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.]*\Z")
_BARE_WORD = re.compile(r"[^\s~+\-*/:^|(),=\[\]<>`'\"]+")

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'[^'\\]*'|"[^"\\]*")
  | (?P<backtick>`[^`]*`)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>\|\||%in%|\*\*|==|!=|<=|>=|[~+\-*/:^|(),=\[\]<>])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, qname (a `quoted` name, text without backticks), op, end
    text: str
    pos: int


_BACKTICK_HINT = "write a column name with spaces or non-ASCII letters in backticks, e.g. `cell line` or `Größe`"


def tokenize(text: str) -> list[Token]:
    """Split a formula into tokens; an unknown character is a FormulaError with its position."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == "`":
                raise _syntax(text, pos, "a backtick-quoted name is not closed", extra="e.g. y ~ `cell line`")
            extra = None
            if not ch.isascii() and (ch.isalnum() or ch == "_"):
                start = pos
                while start > 0 and _BARE_WORD.match(text[start - 1]):
                    start -= 1
                word = _BARE_WORD.match(text, start)
                quoted = f"`{word.group()}`" if word else "`...`"
                extra = f"a column name with non-ASCII letters goes in backticks: {quoted}"
            raise _syntax(text, pos, f"unexpected character {ch!r}", extra=extra)
        kind = m.lastgroup
        if kind == "backtick":
            inner = m.group()[1:-1]
            if not inner.strip():
                raise _syntax(text, pos, "empty backtick-quoted name", extra="e.g. y ~ `cell line`")
            tokens.append(Token("qname", inner, pos))
        elif kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    _check_size(text, tokens)
    return tokens


def _check_size(text: str, tokens: list[Token]) -> None:
    """Refuse formulas nested or long enough to exhaust a recursive parser's stack."""
    depth = 0
    joins = 0
    for t in tokens:
        if t.kind != "op":
            continue
        if t.text in ("(", "["):
            depth += 1
            if depth > MAX_DEPTH:
                raise FormulaError(
                    f"the formula nests brackets more than {MAX_DEPTH} deep (at character {t.pos + 1})",
                    hint=f"hlm accepts at most {MAX_DEPTH} nested brackets; remove redundant ones",
                )
        elif t.text in (")", "]"):
            depth -= 1
        elif t.text in ("+", "-", "*", "/", ":", "%in%", "^", "**"):
            joins += 1
    if joins > MAX_TERMS:
        raise FormulaError(
            f"the formula has {joins + 1} terms; hlm accepts at most {MAX_TERMS}",
            hint="a model this wide needs a design matrix built outside a formula; "
            "split it, or combine predictors into fewer columns",
        )


def quote_name(name: str) -> str:
    """A column name as formulae text: bare when plain (``yield``, ``x.1``), else in backticks."""
    if _PLAIN_NAME.match(name) and name not in _KEYWORD_LITERALS and name != "None":
        return name
    return f"`{name}`"


def _syntax(text: str, pos: int, what: str, *, extra: str | None = None) -> FormulaError:
    caret = " " * pos + "^"
    hint = f"{text}\n{caret}" + (f"\n{extra}" if extra else "")
    return FormulaError(f"formula syntax error at character {pos + 1}: {what}", hint=hint)


# --------------------------------------------------------------------------------------------
# Parsed structure


@dataclass(frozen=True)
class GroupTerm:
    """One ``(expr | factor)`` block after expansion of nesting and ``||``.

    ``expr`` is canonical formulae text for the per-group design (``"1 + Days"``);
    ``factor`` names the data columns whose combination defines the groups (``("batch",
    "cask")`` for ``batch:cask``); ``correlated`` is False for ``||``.
    """

    expr: str
    factor: tuple[str, ...]
    correlated: bool = True
    # covariance structure: "" unstructured (lme4's default), "cs" compound symmetry, "ar1"
    # AR(1) over the ordered values of the column ``expr`` names (see docs/covariance.md)
    cov: str = ""

    @property
    def factor_name(self) -> str:
        return ":".join(self.factor)

    @property
    def label(self) -> str:
        if self.cov:
            return f"{self.cov}({self.expr}|{self.factor_name})"
        bar = "|" if self.correlated else "||"
        return f"{self.expr}{bar}{self.factor_name}"


@dataclass(frozen=True)
class ResidualAR:
    """brms's ``ar(time = t, gr = id)``: AR(1) residuals over ``time`` within each ``gr`` group
    (gaussian models only; see docs/covariance.md). ``gr`` is empty for one series."""

    time: str
    gr: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"ar({self.time}|{':'.join(self.gr)})" if self.gr else f"ar({self.time})"


@dataclass(frozen=True)
class Response:
    """The left-hand side.

    kind is ``"plain"`` (one expression), or ``"binomial"`` (successes and trials).
    ``se`` names a column of known standard errors (brms's ``y | se(col)``); with
    ``se_sigma`` an extra residual SD is estimated on top.
    """

    expr: str
    kind: str = "plain"
    trials: str | None = None  # binomial: expression for the number of trials
    failures: str | None = None  # cbind(successes, failures): trials = successes + failures
    se: str | None = None
    se_sigma: bool = False
    # response terms (docs/response-terms.md): cens(COL[, Y2]) names the censoring column
    # (brms's coding) and the interval's upper end; trunc(lb =, ub =) a number or a column
    # each; weights(COL[, type =]) lme4's precision weights or brms's log-likelihood weights
    cens: str | None = None
    cens_y2: str | None = None
    trunc_lb: str | None = None
    trunc_ub: str | None = None
    weights: str | None = None
    weights_type: str = "precision"

    @property
    def term_columns(self) -> set[str]:
        """Columns named by cens(), trunc() and weights() (not needed to predict)."""
        return {c for c in (self.cens, self.cens_y2, self.trunc_lb, self.trunc_ub, self.weights)
                if c is not None and not _is_number(c)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class SmoothTerm:
    """``s(x, k = 10, by = f)`` in the population-level part (see :mod:`hlm_cli.formula.smooths`).

    ``text`` is the term's formulae text (``s(x, k=10)``), which formulae uses as its name.
    """

    text: str
    x: str
    k: int | None = None
    by: str | None = None

    @property
    def label(self) -> str:
        """mgcv's name of the smooth, without ``by`` (``s(x)``, ``s(x, k=10)``)."""
        return self.text if self.by is None else self.text.replace(f", by={quote_name(self.by)}", "")


@dataclass(frozen=True)
class Formula:
    text: str
    response: Response | None
    fixed: str  # canonical formulae right-hand side of the population-level part
    groups: tuple[GroupTerm, ...]
    columns: frozenset[str] = field(default_factory=frozenset)  # every data column named
    fixed_terms: tuple[str, ...] = ()  # population-level terms (before expansion by formulae)
    has_intercept: bool = True
    # columns the designs use (population-level part and group-level slopes), not the
    # response, se/trials or columns that only define groups; use this rather than scanning
    # ``fixed`` for names, which misses `backticked names`
    predictor_columns: frozenset[str] = field(default_factory=frozenset)
    # relevel(x, ref = "wt") and C(x, levels = [...]) as written: the design makes each
    # column a factor in that order (as --reference does) and the term keeps the plain name
    levels: tuple[LevelOrder, ...] = ()
    autocor: ResidualAR | None = None  # ar(time = , gr = )
    smooths: tuple[SmoothTerm, ...] = ()  # s() terms of the population-level part


@dataclass(frozen=True)
class LevelOrder:
    """``relevel(Genotype, ref = "wt")`` or ``C(Genotype, levels = ["wt", "ko"])``.

    ``values`` are the literals as written (str or number): the reference level alone for
    relevel (``full`` False), every level in order for C (``full`` True). ``factor`` is True
    when the column was made a factor explicitly (``relevel(C(period), ref = 2)``, or C), so a
    numeric column is accepted. ``text`` is the call as written, for messages.
    """

    column: str
    values: tuple
    full: bool
    factor: bool
    text: str


# --------------------------------------------------------------------------------------------
# Expression nodes (only what the grammar allows)


@dataclass(frozen=True)
class Node:
    pass


@dataclass(frozen=True)
class Num(Node):
    text: str


@dataclass(frozen=True)
class Str(Node):
    text: str


@dataclass(frozen=True)
class Var(Node):
    name: str
    pos: int
    literal: bool = False  # TRUE/FALSE written bare; every other name is a data column


@dataclass(frozen=True)
class ListLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Node], ...]
    pos: int


@dataclass(frozen=True)
class BinOp(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Group(Node):  # ( terms | factor )
    terms: Node
    factor: tuple[tuple[str, str], ...]  # ((op, name), ...): op '' for first, ':' or '/'
    double: bool
    pos: int
    cov: str = ""  # "ar1", "cs", "diag" when written inside one (see COVARIANCE_STRUCTURES)


@dataclass(frozen=True)
class Paren(Node):
    inner: Node


def render(node: Node) -> str:
    """Canonical text for formulae (``^`` becomes ``**``, R logicals become Python's)."""
    match node:
        case Num(text) | Str(text):
            return text
        case Var(name, _, literal):
            return _KEYWORD_LITERALS[name] if literal else quote_name(name)
        case ListLit(items):
            return "[" + ", ".join(render(i) for i in items) + "]"
        case Call(func, args, kwargs, _):
            parts = [render(a) for a in args] + [f"{k}={render(v)}" for k, v in kwargs]
            return f"{func}({', '.join(parts)})"
        case BinOp(op, left, right):
            sep = op if op in (":", "**") else f" {op} "
            return f"{render(left)}{sep}{render(right)}"
        case Neg(operand):
            return f"-{render(operand)}"
        case Paren(inner):
            return f"({render(inner)})"
        case Group():
            raise AssertionError("group terms are rendered by expand_groups")
    raise AssertionError(f"unknown node {node!r}")


# --------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str, columns: list[str] | None = None) -> None:
        self.text = text
        self.columns = None if columns is None else [str(c) for c in columns]
        self.tokens = tokenize(text)
        self.i = 0
        self.names: list[Var] = []  # every column name, checked against the columns afterwards
        self.in_kwarg = False  # TRUE/FALSE in "sigma = TRUE" are logicals even if also columns
        self.quoted: set[str] = set()  # names written in backticks

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def accept(self, *ops: str) -> Token | None:
        if self.tok.kind == "op" and self.tok.text in ops:
            t = self.tok
            self.i += 1
            return t
        return None

    def expect(self, op: str, context: str) -> Token:
        t = self.accept(op)
        if t is None:
            got = repr(self.tok.text) if self.tok.kind != "end" else "the end of the formula"
            raise _syntax(self.text, self.tok.pos, f"expected {op!r} {context}, found {got}", extra=self.spaced_hint())
        return t

    def spaced_hint(self) -> str | None:
        """For two names in a row (``cell line``): the backtick-quoted column they may mean."""
        prev = self.tokens[self.i - 1] if self.i > 0 else None
        if prev is None or prev.kind not in ("name", "qname") or self.tok.kind not in ("name", "qname"):
            return None
        words = self.text[prev.pos :].split()
        for c in self.columns or []:
            if " " in c and c.split()[:2] == words[:2] or c.startswith(prev.text + " "):
                return f"a column name with spaces goes in backticks: `{c}`"
        return "join terms with '+'; " + _BACKTICK_HINT

    def fail(self, what: str, pos: int | None = None, extra: str | None = None) -> FormulaError:
        return _syntax(self.text, self.tok.pos if pos is None else pos, what, extra=extra)

    # formula level
    def formula(self) -> tuple[Node | None, list[Node], Node]:
        tildes = [t for t in self.tokens if t.kind == "op" and t.text == "~"]
        if not tildes:
            raise FormulaError(
                "the formula has no '~'",
                hint='write it as "response ~ predictors", e.g. "logfc ~ 1 + (1|gene)"',
            )
        if len(tildes) > 1:
            raise self.fail("a formula has exactly one '~'", pos=tildes[1].pos)
        lhs: Node | None = None
        additions: list[Node] = []
        if not (self.tok.kind == "op" and self.tok.text == "~"):
            lhs = self.expr()
            while self.accept("|"):
                additions.append(self.addition())
                while self.accept("+"):
                    additions.append(self.addition())
        self.expect("~", "between the response and the predictors")
        if self.tok.kind == "end":
            raise self.fail("nothing after '~'", extra='add predictors, e.g. "y ~ 1 + (1|group)"')
        rhs = self.terms()
        if self.tok.kind != "end":
            raise self.fail(f"unexpected {self.tok.text!r}", extra=self.spaced_hint())
        return lhs, additions, rhs

    def addition(self) -> Node:
        t = self.tok
        if t.kind != "name" or t.text not in ADDITIONS or self.peek().text != "(":
            raise self.fail(
                "after '|' on the left-hand side only se(COL), trials(COL), cens(COL), "
                "trunc(lb = , ub = ) or weights(COL) may follow",
                extra='e.g. "y | se(sigma) ~ 1 + (1|school)"',
            )
        return self.call()

    # model terms
    def terms(self) -> Node:
        if self.accept("-"):
            node: Node = Neg(self.product())
        else:
            node = self.product()
        while True:
            op = self.accept("+", "-")
            if op is None:
                return node
            node = BinOp(op.text, node, self.product())

    def product(self) -> Node:
        node = self.inter()
        while op := self.accept("*", "/"):
            node = BinOp(op.text, node, self.inter())
        return node

    def inter(self) -> Node:
        node = self.power()
        while self.accept(":", "%in%"):
            node = BinOp(":", node, self.power())
        return node

    def power(self) -> Node:
        node = self.atom()
        if self.accept("^", "**"):
            if self.tok.kind != "number" or not self.tok.text.isdigit():
                raise self.fail("'^' in a formula takes a whole number, e.g. (a + b)^2")
            exp = Num(self.tok.text)
            self.i += 1
            node = BinOp("**", node, exp)
        return node

    def atom(self) -> Node:
        t = self.tok
        if self.accept("("):
            inner = self.terms()
            bar = self.accept("|", "||")
            if bar is not None:
                factor = self.factor()
                self.expect(")", "to close the group term")
                return Group(inner, factor, bar.text == "||", t.pos)
            self.expect(")", "to close the bracket")
            return Paren(inner)
        if t.kind == "number":
            if t.text not in ("0", "1"):
                raise self.fail(
                    f"a bare number {t.text} is not a term", extra="only 0 or 1 (intercept) may appear"
                )
            self.i += 1
            return Num(t.text)
        if t.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                if t.text in COVARIANCE_STRUCTURES:
                    return self.structured()
                if t.text == "ar":
                    return self.ar_term()
                return self.call()
            return self.var()
        if t.kind == "qname":
            return self.var()
        if t.kind == "end":
            raise self.fail("the formula ends too early")
        raise self.fail(f"unexpected {t.text!r}")

    def structured(self) -> Group:
        """``ar1(time | id)``, ``cs(1 + x | g)``, ``diag(x | g)``: a group term with a structure."""
        t = self.tok
        self.i += 2  # the name and '('
        inner = self.terms()
        if self.accept("|", "||") is None:
            raise self.fail(
                f"{t.text}() holds a group term: terms '|' grouping factor",
                extra=f"e.g. {t.text}({'time' if t.text == 'ar1' else '1 + x'} | id)",
            )
        factor = self.factor()
        self.expect(")", f"to close {t.text}()")
        return Group(inner, factor, t.text == "diag", t.pos, cov=t.text)

    def ar_term(self) -> Call:
        """brms's ``ar(time = t, gr = id, p = 1)``: only these keywords, columns as values."""
        t = self.tok
        self.i += 2
        kwargs: list[tuple[str, Node]] = []
        example = "e.g. ar(time = week, gr = patient)"
        while not self.accept(")"):
            if kwargs:
                self.expect(",", "between the arguments of ar()")
            if not (self.tok.kind == "name" and self.peek().text == "=" and self.tok.text in ("time", "gr", "p")):
                raise FormulaError("ar() takes the keywords time =, gr = and p = 1 only", hint=example)
            key = self.tok.text
            self.i += 2
            if key == "p":
                if self.tok.kind != "number" or self.tok.text not in ("1", "1.0"):
                    raise FormulaError("ar(p = ...) supports order 1 only (AR(1) residuals)", hint=example)
                self.i += 1
                continue
            kwargs.append((key, self.var() if self.tok.kind in ("name", "qname") else self.primary()))
        return Call("ar", (), tuple(kwargs), t.pos)

    def factor(self) -> tuple[tuple[str, str], ...]:
        parts: list[tuple[str, str]] = []
        op = ""
        while True:
            if self.tok.kind not in ("name", "qname"):
                raise self.fail(
                    "a grouping factor after '|' must be a column name",
                    extra="e.g. (1|gene), (1|region/school), (1|batch:cask)",
                )
            v = self.var()
            parts.append((op, v.name))
            nxt = self.accept(":", "/")
            if nxt is None:
                return tuple(parts)
            op = nxt.text

    def var(self) -> Var:
        """A column name. Keywords and builtins (``yield``, ``sum``) are column names like any
        other: they are looked up in the data and never evaluated, so nothing here depends on
        refusing them."""
        t = self.tok
        self.i += 1
        if t.kind == "name":
            if t.text in _KEYWORD_LITERALS and (self.in_kwarg or t.text not in (self.columns or [])):
                return Var(t.text, t.pos, literal=True)
            if t.text == ".":
                cols = ", ".join(quote_name(c) for c in (self.columns or [])[:30])
                raise FormulaError(
                    "'.' (all other columns) is not supported in an hlm formula",
                    hint="name the predictors, e.g. y ~ a + b" + (f"; columns: {cols}" if cols else ""),
                )
            if "__" in t.text and t.text not in (self.columns or []):
                raise FormulaError(
                    f"the name {t.text!r} is not allowed in a formula",
                    hint="formulas may name data columns and the allowed transforms only",
                )
        else:
            self.quoted.add(t.text)
        v = Var(t.text, t.pos)
        self.names.append(v)
        return v

    def call(self) -> Call:
        t = self.tok
        name = t.text
        if name not in ALLOWED_FUNCTIONS:
            raise FormulaError(
                f"the function {name!r} is not allowed in a formula",
                hint="allowed: " + ", ".join(sorted(ALLOWED_FUNCTIONS - LHS_ONLY)),
            )
        self.i += 1
        self.expect("(", f"after {name}")
        args: list[Node] = []
        kwargs: list[tuple[str, Node]] = []
        if not self.accept(")"):
            while True:
                if self.tok.kind == "name" and self.peek().text == "=" and self.peek().kind == "op":
                    key = self.tok.text
                    if key.startswith("_"):
                        raise self.fail(f"the keyword {key!r} is not allowed")
                    self.i += 2
                    outer, self.in_kwarg = self.in_kwarg, True
                    try:
                        kwargs.append((key, self.expr()))
                    finally:
                        self.in_kwarg = outer
                else:
                    if kwargs:
                        raise self.fail("a positional argument follows a keyword argument")
                    args.append(self.expr())
                if self.accept(")"):
                    break
                self.expect(",", f"between the arguments of {name}()")
        return Call(name, tuple(args), tuple(kwargs), t.pos)

    # arithmetic inside calls
    def expr(self) -> Node:
        node = self.mul()
        while op := self.accept("+", "-"):
            node = BinOp(op.text, node, self.mul())
        return node

    def mul(self) -> Node:
        node = self.unary()
        while op := self.accept("*", "/"):
            node = BinOp(op.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            return Neg(self.unary())
        node = self.primary()
        if self.accept("**", "^"):
            node = BinOp("**", node, self.unary())
        return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "number":
            self.i += 1
            return Num(t.text)
        if t.kind == "string":
            self.i += 1
            return Str(t.text)
        if t.kind == "name":
            if t.text == "c" and self.in_kwarg and self.peek().kind == "op" and self.peek().text == "(":
                self.i += 2  # R's c("wt", "ko") in C(x, levels = c(...)): a list of literals
                return self.literal_list(")")
            if self.peek().kind == "op" and self.peek().text == "(":
                return self.call()
            return self.var()
        if t.kind == "qname":
            return self.var()
        if self.accept("("):
            inner = self.expr()
            self.expect(")", "to close the bracket")
            return Paren(inner)
        if self.accept("["):
            return self.literal_list("]")
        if t.kind == "end":
            raise self.fail("the formula ends too early")
        raise self.fail(f"unexpected {t.text!r}")

    def literal_list(self, close: str) -> ListLit:
        """Numbers and strings up to ``close`` (the opening bracket is consumed)."""
        items: list[Node] = []
        if not self.accept(close):
            while True:
                neg = self.tok.kind == "op" and self.tok.text == "-" and self.peek().kind == "number"
                if neg:
                    self.i += 1
                if self.tok.kind not in ("number", "string"):
                    raise self.fail("a list in a formula may hold only numbers and strings")
                text = ("-" if neg else "") + self.tok.text
                items.append(Num(text) if self.tok.kind == "number" else Str(text))
                self.i += 1
                if self.accept(close):
                    break
                self.expect(",", "between list items")
        return ListLit(tuple(items))


# --------------------------------------------------------------------------------------------
# From nodes to the Formula


_RELEVEL_HINT = 'e.g. relevel(Genotype, ref = "wt") or C(Genotype, levels = ["wt", "ko"])'


def _literal(node: Node):
    """A level as written: ``"wt"`` -> 'wt', ``2`` -> 2, ``-1`` -> -1; else None."""
    if isinstance(node, Str):
        return node.text[1:-1]
    if isinstance(node, Num):
        return int(node.text) if re.fullmatch(r"-?\d+", node.text) else float(node.text)
    if isinstance(node, Neg) and isinstance(node.operand, Num):
        return _literal(Num("-" + node.operand.text))
    return None


def _level_order(call: Call) -> LevelOrder | None:
    """The LevelOrder of ``relevel(...)`` or ``C(x, levels = ...)``; None for any other call."""
    written = render(call)
    kw = dict(call.kwargs)
    if call.func == "C" and "levels" in kw:
        if len(call.args) != 1 or not isinstance(call.args[0], Var) or set(kw) != {"levels"}:
            raise FormulaError(f"{written}: C() with levels takes one column and the levels in order", hint=_RELEVEL_HINT)
        levels = kw["levels"]
        values = [_literal(v) for v in levels.items] if isinstance(levels, ListLit) else [None]
        if not values or any(v is None for v in values):
            raise FormulaError(f"{written}: levels must be a list of the column's levels in order", hint=_RELEVEL_HINT)
        if len(set(map(str, values))) != len(values):
            raise FormulaError(f"{written}: a level is listed twice", hint="list each level once")
        return LevelOrder(call.args[0].name, tuple(values), True, True, written)
    if call.func != "relevel":
        return None
    args = list(call.args)
    if "ref" in kw and set(kw) == {"ref"} and len(args) == 1:
        args.append(kw["ref"])
    if len(args) != 2 or (kw and set(kw) != {"ref"}):
        raise FormulaError(f"{written}: relevel() takes a column and its reference level", hint=_RELEVEL_HINT)
    target, ref = args[0], _literal(args[1])
    factor = False
    if isinstance(target, Call) and target.func == "C" and len(target.args) == 1 and not target.kwargs:
        target, factor = target.args[0], True
    if not isinstance(target, Var) or target.literal:
        raise FormulaError(f"{written}: relevel() takes a column name (or C(column)) first", hint=_RELEVEL_HINT)
    if ref is None:
        raise FormulaError(f"{written}: the reference level must be written as a string or number",
                           hint=_RELEVEL_HINT)
    return LevelOrder(target.name, (ref,), False, factor, written)


def _strip_levels(node: Node, out: list[LevelOrder], *, inside: str | None = None) -> Node:
    """``node`` with each relevel()/C(x, levels=) replaced by its plain column, recorded in ``out``."""
    match node:
        case Call(func, args, kwargs, pos):
            order = _level_order(node)
            if order is not None:
                if inside is not None:
                    raise FormulaError(f"{order.text} cannot stand inside {inside}()",
                                       hint="use it as a term of its own, e.g. y ~ relevel(g, ref = \"wt\") * x")
                out.append(order)
                return Var(order.column, pos)
            return Call(func, tuple(_strip_levels(a, out, inside=func) for a in args),
                        tuple((k, _strip_levels(v, out, inside=func)) for k, v in kwargs), pos)
        case BinOp(op, left, right):
            return BinOp(op, _strip_levels(left, out, inside=inside), _strip_levels(right, out, inside=inside))
        case Neg(operand):
            return Neg(_strip_levels(operand, out, inside=inside))
        case Paren(inner):
            return Paren(_strip_levels(inner, out, inside=inside))
        case Group(terms, factor, double, pos):
            return Group(_strip_levels(terms, out, inside=inside), factor, double, pos, cov=node.cov)
    return node


def _split_terms(node: Node) -> list[tuple[str, Node]]:
    """Flatten a top-level +/- chain into signed terms."""
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        left = _split_terms(node.left)
        right = _split_terms(node.right)
        if node.op == "-":
            right = [("-" if s == "+" else "+", n) for s, n in right]
        return left + right
    if isinstance(node, Neg):
        return [("-" if s == "+" else "+", n) for s, n in _split_terms(node.operand)]
    return [("+", node)]


def _n_terms(node: Node) -> int:
    """How many population-level terms ``node`` expands to (``a*b*c`` -> 7), capped."""
    cap = 10 * MAX_TERMS
    match node:
        case BinOp("+", left, right):
            return min(cap, _n_terms(left) + _n_terms(right))
        case BinOp("-", left, _):
            return _n_terms(left)
        case BinOp("*", left, right):
            a, b = _n_terms(left), _n_terms(right)
            return min(cap, a + b + a * b)
        case BinOp(":", left, right):
            return min(cap, _n_terms(left) * _n_terms(right))
        case BinOp("/", left, right):
            a, b = _n_terms(left), _n_terms(right)
            return min(cap, a + a * b)
        case BinOp("**", left, Num(text)):
            n, k = _n_terms(left), int(text)
            total, comb = 0, 1
            for i in range(1, min(n, k) + 1):  # interactions of order 1..k among n terms
                comb = comb * (n - i + 1) // i
                total += comb
                if total >= cap:
                    return cap
            return total
        case Paren(inner) | Neg(inner):
            return _n_terms(inner)
        case Num():
            return 0
    return 1


def _var_names(node: Node) -> set[str]:
    match node:
        case Var(name, _, literal):
            return set() if literal else {name}
        case BinOp(_, left, right):
            return _var_names(left) | _var_names(right)
        case Neg(operand) | Paren(operand):
            return _var_names(operand)
        case Call(_, args, kwargs, _):
            out: set[str] = set()
            for a in list(args) + [v for _, v in kwargs]:
                out |= _var_names(a)
            return out
        case Group(terms, _, _, _):
            return _var_names(terms)
    return set()


def _contains_group(node: Node) -> bool:
    match node:
        case Group():
            return True
        case BinOp(_, left, right):
            return _contains_group(left) or _contains_group(right)
        case Neg(operand) | Paren(operand):
            return _contains_group(operand)
    return False


def _expand_factor(parts: tuple[tuple[str, str], ...]) -> list[tuple[str, ...]]:
    """``a/b`` -> [(a,), (a, b)]; ``a:b`` -> [(a, b)]; ``a/b:c`` -> [(a,), (a, b, c)]."""
    factors: list[tuple[str, ...]] = []
    current: list[str] = []
    for op, name in parts:
        if op == "/":
            factors.append(tuple(current))
        current.append(name)
    factors.append(tuple(current))
    return factors


def _render_terms(terms: list[tuple[str, Node]]) -> tuple[str, bool]:
    """Canonical text of a term list and whether it keeps the intercept."""
    intercept = True
    pieces: list[str] = []
    for sign, node in terms:
        if isinstance(node, Num):
            if node.text == "0" or (node.text == "1" and sign == "-"):
                intercept = False
            elif node.text == "1":
                intercept = True
            continue
        text = render(node)
        pieces.append(text if sign == "+" else f"- {text}")
    body = " + ".join(p for p in pieces if not p.startswith("- "))
    minus = " ".join(p for p in pieces if p.startswith("- "))
    head = "1" if intercept else "0"
    text = head + (f" + {body}" if body else "") + (f" {minus}" if minus else "")
    return text, intercept


def _ar1_time(group: Group) -> str:
    """The time column of ``ar1(time | id)`` (also ``ar1(time + 0 | id)``, glmmTMB's spelling)."""
    cols = [n for s, n in _split_terms(group.terms) if not isinstance(n, Num)]
    if len(cols) != 1 or not isinstance(cols[0], Var) or cols[0].literal:
        raise FormulaError(
            "ar1() takes one time column before '|', e.g. ar1(week | patient)",
            hint="the column holds the (numeric) times; each (group, time) pair gets an AR(1)-correlated effect",
        )
    return cols[0].name


def _expand_groups(group: Group) -> list[GroupTerm]:
    terms = _split_terms(group.terms)
    expr, intercept = _render_terms(terms)
    factors = _expand_factor(group.factor)
    if group.cov == "ar1":
        return [GroupTerm(_ar1_time(group), f, correlated=True, cov="ar1") for f in factors]
    if group.cov == "cs":
        return [GroupTerm(expr, f, correlated=True, cov="cs") for f in factors]
    out: list[GroupTerm] = []
    for factor in factors:
        if group.double:
            # (1 + x || g) = (1|g) + (0 + x|g): independent SDs, no correlation
            if intercept:
                out.append(GroupTerm("1", factor, correlated=False))
            for sign, node in terms:
                if sign == "+" and not isinstance(node, Num):
                    out.append(GroupTerm(f"0 + {render(node)}", factor, correlated=False))
        else:
            out.append(GroupTerm(expr, factor, correlated=True))
    return out


def _lhs_text(node: Node) -> str:
    """A left-hand-side argument: a column's own name (``cell line``), else formulae text."""
    if isinstance(node, Var) and not node.literal:
        return node.name
    return render(node)


def _column_arg(node: Node, what: str, hint: str, *, number: bool = False) -> str:
    """A response-term argument: a column name (or, with ``number``, a number)."""
    if isinstance(node, Var) and not node.literal:
        return node.name
    if number:
        if isinstance(node, Num):
            return node.text
        if isinstance(node, Neg) and isinstance(node.operand, Num):
            return "-" + node.operand.text
    raise FormulaError(f"{what} takes {'a number or ' if number else ''}a column name, not {render(node)!r}", hint=hint)


def _response_terms(add: Call, terms: dict) -> None:
    """cens(), trunc() and weights() of the left-hand side, into ``terms``."""
    if add.func in terms["seen"]:
        raise FormulaError(f"{add.func}() appears twice on the left-hand side", hint="give each response term once")
    terms["seen"].add(add.func)
    if add.func == "cens":
        hint = 'e.g. time | cens(censored) ~ x, or y | cens(c, y2) ~ x for interval censoring'
        if not 1 <= len(add.args) <= 2 or any(k != "y2" for k, _ in add.kwargs) or len(add.args) + len(add.kwargs) > 2:
            raise FormulaError("cens() takes the censoring column and, for interval censoring, the upper end y2", hint=hint)
        terms["cens"] = _column_arg(add.args[0], "cens()", hint)
        y2 = add.args[1] if len(add.args) == 2 else dict(add.kwargs).get("y2")
        terms["cens_y2"] = None if y2 is None else _column_arg(y2, "cens()'s y2", hint)
    elif add.func == "trunc":
        hint = "e.g. y | trunc(lb = 0) ~ x, or trunc(lb = 0, ub = upper_col)"
        if add.args or not add.kwargs or any(k not in ("lb", "ub") for k, _ in add.kwargs):
            raise FormulaError("trunc() takes lb = and/or ub = (a number or a column each)", hint=hint)
        for key, value in add.kwargs:
            terms[f"trunc_{key}"] = _column_arg(value, f"trunc()'s {key}", hint, number=True)
        lb, ub = terms.get("trunc_lb"), terms.get("trunc_ub")
        if lb is not None and ub is not None and _is_number(lb) and _is_number(ub) and float(lb) >= float(ub):
            raise FormulaError(f"trunc() needs lb < ub, got lb = {lb}, ub = {ub}", hint=hint)
    else:  # weights
        hint = 'weights(w) (lme4 precision weights) or weights(w, type = "loglik") (brms)'
        if len(add.args) != 1 or any(k != "type" for k, _ in add.kwargs):
            raise FormulaError("weights() takes one column and optionally type =", hint=hint)
        terms["weights"] = _column_arg(add.args[0], "weights()", hint)
        for _, value in add.kwargs:
            kind = value.text.strip("'\"") if isinstance(value, Str) else render(value)
            if kind not in WEIGHT_TYPES:
                raise FormulaError(f"weights() has no type {kind!r}; use \"precision\" or \"loglik\"", hint=hint)
            terms["weights_type"] = kind


def _lhs_response(lhs: Node, additions: list[Node]) -> Response:
    resp = _lhs_plain(lhs, [a for a in additions if a.func in ("se", "trials")])
    extra = [a for a in additions if a.func not in ("se", "trials")]
    if not extra:
        return resp
    terms: dict = {"seen": set()}
    for add in extra:
        _response_terms(add, terms)
    terms.pop("seen")
    if resp.se is not None and "weights" in terms:
        raise FormulaError("se() and weights() cannot be combined: both set each row's residual variance",
                           hint="give known standard errors with se(), or relative precisions with weights()")
    from dataclasses import replace

    return replace(resp, **terms)


def _lhs_plain(lhs: Node, additions: list[Node]) -> Response:
    se: str | None = None
    se_sigma = False
    trials: str | None = None
    for add in additions:
        assert isinstance(add, Call)
        if add.func == "se":
            if len(add.args) != 1 or not isinstance(add.args[0], Var):
                raise FormulaError(
                    "se() takes one column name, e.g. y | se(sigma) ~ ...",
                    hint="se(COL) or se(COL, sigma = TRUE)",
                )
            se = add.args[0].name
            for key, value in add.kwargs:
                if key != "sigma":
                    raise FormulaError(f"se() has no option {key!r}", hint="se(COL, sigma = TRUE)")
                se_sigma = render(value) == "True"
        else:  # trials
            if len(add.args) != 1:
                raise FormulaError("trials() takes one column or number", hint="y | trials(n) ~ ...")
            trials = _lhs_text(add.args[0])
    if isinstance(lhs, Call) and lhs.func == "cbind":
        if len(lhs.args) != 2:
            raise FormulaError(
                "cbind() on the left-hand side takes two columns: successes and failures",
                hint="e.g. cbind(incidence, size - incidence) ~ period + (1|herd)",
            )
        succ, fail = (_lhs_text(a) for a in lhs.args)
        return Response(succ, kind="binomial", failures=fail, se=se, se_sigma=se_sigma)
    if isinstance(lhs, Call) and lhs.func in ("p", "prop", "proportion"):
        if len(lhs.args) != 2:
            raise FormulaError(
                f"{lhs.func}() takes two columns: successes and trials", hint="e.g. p(y, n) ~ x"
            )
        succ, n = (_lhs_text(a) for a in lhs.args)
        return Response(succ, kind="binomial", trials=n, se=se, se_sigma=se_sigma)
    if trials is not None:
        return Response(_lhs_text(lhs), kind="binomial", trials=trials)
    return Response(_lhs_text(lhs), se=se, se_sigma=se_sigma)


_S_HINT = "write s() as a population-level term of its own: y ~ x2 + s(x) or s(x, k = 10) or s(x, by = f)"


def _contains_call(node: Node, func: str) -> bool:
    match node:
        case Call(name, args, kwargs, _):
            return name == func or any(_contains_call(a, func) for a in list(args) + [v for _, v in kwargs])
        case BinOp(_, left, right):
            return _contains_call(left, func) or _contains_call(right, func)
        case Neg(operand) | Paren(operand):
            return _contains_call(operand, func)
        case Group(terms, _, _, _):
            return _contains_call(terms, func)
    return False


def _smooth_term(node: Call) -> SmoothTerm:
    """Check one ``s(...)`` call: a numeric column, k >= 3, a factor ``by``, the cr basis."""
    if len(node.args) != 1 or not isinstance(node.args[0], Var) or node.args[0].literal:
        raise FormulaError("s() takes one column, e.g. s(x) or s(x, k = 10)",
                           hint="smooths of several variables (s(x, z), te()) are not supported; add s(x) + s(z)")
    k = by = None
    for key, value in node.kwargs:
        if key == "k":
            if not (isinstance(value, Num) and float(value.text).is_integer() and float(value.text) >= 3):
                raise FormulaError(f"s(): k must be a whole number >= 3, not {render(value)}",
                                   hint="k is the basis dimension (knots), e.g. s(x, k = 10), mgcv's default")
            k = int(float(value.text))
        elif key == "by":
            if not isinstance(value, Var) or value.literal:
                raise FormulaError(f"s(): by must be a column, not {render(value)}", hint="e.g. s(x, by = treatment)")
            by = value.name
        elif key == "bs":
            if not (isinstance(value, Str) and value.text[1:-1] == "cr"):
                raise FormulaError(f"s(): basis bs = {render(value)} is not available",
                                   hint="hlm's s() is a penalized cubic regression spline (mgcv's bs = \"cr\"); "
                                   "drop bs = or write bs = \"cr\"")
        else:
            raise FormulaError(f"s() has no option {key!r}", hint="s(x), s(x, k = 10), s(x, by = f)")
    return SmoothTerm(render(node), node.args[0].name, k, by)


def _check_calls(node: Node, *, lhs: bool) -> None:
    match node:
        case Call(func, args, kwargs, _):
            if func in ("s", "bs", "cr") and lhs:
                raise FormulaError(f"{func}() belongs on the right-hand side of '~'", hint=_S_HINT)
            if func in LHS_ONLY and not lhs:
                raise FormulaError(
                    f"{func}() belongs on the left-hand side of '~'",
                    hint="e.g. cbind(s, f) ~ x or y | se(sigma) ~ 1 + (1|school)",
                )
            for a in args:
                _check_calls(a, lhs=False)
            for _, v in kwargs:
                _check_calls(v, lhs=False)
        case BinOp(_, left, right):
            _check_calls(left, lhs=lhs)
            _check_calls(right, lhs=lhs)
        case Neg(operand) | Paren(operand):
            _check_calls(operand, lhs=lhs)
        case Group(terms, _, _, _):
            _check_calls(terms, lhs=False)


def parse(text: str, columns: list[str] | None = None, *, source: str = "the data") -> Formula:
    """Parse and check a formula.

    Parameters
    ----------
    text : str
        lme4/brms-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    columns : list of str, optional
        The data's columns. When given, every name in the formula must be one of them.

    Returns
    -------
    Formula

    Raises
    ------
    FormulaError
        Syntax errors (with the position), names that are not columns, calls outside the
        allow-list, attribute access, and other refused constructs.
    """
    if not text or not text.strip():
        raise FormulaError("the formula is empty", hint='e.g. --formula "logfc ~ 1 + (1|gene)"')
    try:
        return _parse(text, columns, source)
    except RecursionError:  # a backstop: the size limits in tokenize() should come first
        raise FormulaError(
            "the formula is too deeply nested to parse",
            hint=f"hlm accepts at most {MAX_DEPTH} nested brackets and {MAX_TERMS} terms",
        ) from None


def _unknown_column_hint(name: str, columns: list[str]) -> str:
    odd = [c for c in columns if not _PLAIN_NAME.match(c)]
    for c in odd:  # "cell" of "cell line", "Gr" of "Größe"
        if c.startswith(name) or name in c.split():
            return f"a column name with spaces or non-ASCII letters goes in backticks: `{c}`"
    from hlm_cli.errors import closest_match

    return closest_match(name, columns)


def _parse(text: str, columns: list[str] | None, source: str) -> Formula:
    p = _Parser(text, columns)
    lhs, additions, rhs = p.formula()
    if lhs is not None:
        _check_calls(lhs, lhs=True)
        for a in additions:
            _check_calls(a, lhs=True)
    _check_calls(rhs, lhs=False)
    if lhs is not None:
        _strip_levels(lhs, lhs_orders := [])
        if lhs_orders:
            raise FormulaError(f"{lhs_orders[0].text} belongs on the right-hand side of '~'",
                               hint="relevel() and C(x, levels = ...) set a predictor's reference level")
    orders: list[LevelOrder] = []
    rhs = _strip_levels(rhs, orders)

    fixed_terms: list[tuple[str, Node]] = []
    groups: list[GroupTerm] = []
    smooths: list[SmoothTerm] = []
    predictors = _var_names(rhs)
    autocor: ResidualAR | None = None
    for sign, node in _split_terms(rhs):
        if isinstance(node, Call) and node.func == "ar":
            autocor = _residual_ar(node, autocor)
            continue
        if isinstance(node, Group):
            if sign == "-":
                raise FormulaError("a group-level term cannot be removed with '-'")
            if _contains_call(node, "s"):
                raise FormulaError(f"s() cannot be used in a group-level term ({render(node.terms)} | ...)",
                                   hint="put the smooth in the population-level part; a smooth per level of a factor "
                                   "is s(x, by = f)")
            groups.extend(_expand_groups(node))
        elif _contains_group(node):
            raise FormulaError(
                "a group-level term (x | g) must stand on its own, joined with '+'",
                hint="e.g. y ~ x + (1 + x | g)",
            )
        else:
            if isinstance(node, Call) and node.func == "s" and sign == "+":
                smooths.append(_smooth_term(node))
            elif _contains_call(node, "s"):
                raise FormulaError(f"s() must be a term of its own, not part of {render(node)!r}", hint=_S_HINT)
            fixed_terms.append((sign, node))
    fixed, has_intercept = _render_terms(fixed_terms)
    n_terms = sum(_n_terms(n) for s, n in fixed_terms if s == "+")
    if n_terms > MAX_TERMS:
        raise FormulaError(
            f"the population-level part expands to {n_terms if n_terms < 10 * MAX_TERMS else 'thousands of'} terms; "
            f"hlm accepts at most {MAX_TERMS}",
            hint="each '*' adds every interaction of the terms it joins; write the interactions you need with ':'",
        )

    names = {v.name for v in p.names}
    if columns is not None:
        cols = set(columns)
        for v in p.names:
            if v.name not in cols:
                dotted = "." in v.name and v.name not in p.quoted
                kind = "attribute access" if dotted and v.name.split(".")[0] not in cols else None
                what = (
                    f"column {v.name!r} is not in {source}"
                    if kind is None
                    else f"{v.name!r} in the formula is neither a column nor allowed ({kind})"
                )
                raise FormulaError(what, hint=_unknown_column_hint(v.name, [str(c) for c in columns]))
    response = _lhs_response(lhs, additions) if lhs is not None else None
    return Formula(
        text=text,
        response=response,
        fixed=fixed,
        groups=tuple(groups),
        columns=frozenset(names),
        fixed_terms=tuple(render(n) for s, n in fixed_terms if s == "+" and not isinstance(n, Num)),
        has_intercept=has_intercept,
        # ar()'s time and grouping columns define the residual correlation, not the mean
        predictor_columns=frozenset(predictors - ({autocor.time, *autocor.gr} if autocor else set())),
        levels=tuple(orders),
        autocor=autocor,
        smooths=tuple(smooths),
    )


def _residual_ar(node: Call, previous: ResidualAR | None) -> ResidualAR:
    example = "e.g. y ~ x + ar(time = week, gr = patient)"
    if previous is not None:
        raise FormulaError("the formula has two ar() terms", hint="one ar(time = , gr = ) term per model")
    kw = dict(node.kwargs)
    if "time" not in kw:
        raise FormulaError("ar() needs its time column: ar(time = COL, gr = COL)", hint=example)
    for key, value in kw.items():
        if not isinstance(value, Var) or value.literal:
            raise FormulaError(f"ar({key} = ...) takes a column name", hint=example)
    return ResidualAR(kw["time"].name, (kw["gr"].name,) if "gr" in kw else ())
