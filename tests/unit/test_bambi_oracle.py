"""Bambi as an oracle: hlm's model has the log density of Bambi's, parameter for parameter.

For every formula both can express (crossed and nested group intercepts, independent
intercepts and slopes, a factor and a numeric predictor, ``--sigma-formula``) and every
family both have, Bambi's model is built with the priors hlm resolved (``BuiltModel.priors``,
the ones run.json records; Bambi's auto-scaling off and an unused prior an error), and the
two joint log densities (likelihood plus every prior) are compared at
random values of the *natural* parameters: the centered intercept, the slopes, the group
effects on lme4's scale (deviations), their SDs and the family's parameters. No sampling.

Bambi is built with ``noncentered=False`` and its default ``center_predictors=True``, so its
free variables are exactly those natural parameters (its ``Intercept`` is the intercept of
the centered design, the one hlm's intercept prior is on too; see hlm_cli/model/build.py).
hlm samples other coordinates (``_Intercept_c``, the QR-rotated ``_b_qr``, non-centered
``*_offset`` or hierarchically centered ``_mean(...)`` group effects) and reports the natural
parameters as deterministics. Given the SDs, those deterministics are an affine function
``n = J u + c`` of hlm's sampled coordinates ``u``: the test reads ``J`` and ``c`` from hlm's
own graph (PyTensor's jacobian), solves for ``u``, checks that the deterministics give back
``n``, and compares ``log p_hlm(u) - log |det J|`` (the change of variables) with Bambi's
``log p(n)``. Both densities are evaluated without transforms (positive parameters on their
own scale), so the comparison is exact up to rounding. hlm's zero-sum parameterization is a
different model pointwise (equal only after integrating the mean of the group effects), so
the test fixes ``parameterization`` to ``noncentered`` or ``centered``.

The negative controls at the end show that the comparison can fail: a prior scale off by
10% or a wrong link gives a different log density.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

bmb = pytest.importorskip("bambi", reason="bambi is a dev extra (pip install -e '.[dev]'): the Bambi oracle test needs it")

import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402
from pymc.model.transform.conditioning import remove_value_transforms  # noqa: E402

from hlm_cli.formula import parse  # noqa: E402
from hlm_cli.formula.design import build_design, build_sigma_design  # noqa: E402
from hlm_cli.model.build import CENTERED_INTERCEPT, CENTERED_SIGMA_INTERCEPT, build_model  # noqa: E402
from hlm_cli.model.families import get_family  # noqa: E402
from hlm_cli.model.priors import parse_priors  # noqa: E402

MODE = "FAST_COMPILE"  # a few evaluations per model: compiling C code would cost more than it saves
POSITIVE = {"sigma", "nu", "alpha", "kappa"}
# hlm family -> (Bambi family, Bambi link): Bambi's gamma defaults to the inverse link, hlm's is log
BAMBI_FAMILY = {
    "gaussian": ("gaussian", None),
    "t": ("t", None),
    "bernoulli": ("bernoulli", None),
    "binomial": ("binomial", None),
    "poisson": ("poisson", None),
    "negativebinomial": ("negativebinomial", None),
    "gamma": ("gamma", "log"),
    "beta": ("beta", None),
    "lognormal": ("lognormal", None),
}
# the response of each family (columns of the frame below)
RESPONSE = {
    "gaussian": "y", "t": "y", "lognormal": "pos", "gamma": "pos", "beta": "unit",
    "bernoulli": "flag", "poisson": "count", "negativebinomial": "count", "binomial": "p(succ, n)",
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def make_frame() -> pd.DataFrame:
    """60 rows: crossed factors a (4 levels) and b (5), plots nested in sites (labels reused
    across sites, so site:plot differs from plot), a numeric x and a 3-level factor cond."""
    rng = np.random.default_rng(20261130)
    n = 60
    a = rng.choice([f"a{i}" for i in range(4)], n)
    b = rng.choice([f"b{i}" for i in range(5)], n)
    site = np.repeat([f"s{i}" for i in range(3)], n // 3)
    plot = np.tile(np.repeat([f"p{i}" for i in range(4)], 5), 3)
    x = rng.normal(1.0, 2.0, n)  # far from 0: the centered intercept differs from the intercept
    cond = rng.choice(["c1", "c2", "c3"], n)
    eta = 0.3 + 0.2 * x + 0.4 * (cond == "c2") + rng.normal(0, 0.5, 4)[np.searchsorted(np.unique(a), a)]
    trials = rng.integers(3, 12, n)
    return pd.DataFrame({
        "a": a, "b": b, "site": site, "plot": plot, "x": x, "cond": cond,
        "y": eta + rng.normal(0, 0.7, n),
        "pos": np.exp(eta / 2 + rng.normal(0, 0.3, n)),
        "unit": 1 / (1 + np.exp(-(eta / 2 + rng.normal(0, 0.5, n)))),
        "flag": rng.binomial(1, 1 / (1 + np.exp(-eta / 2))),
        "count": rng.poisson(np.exp(eta / 2)),
        "n": trials,
        "succ": rng.binomial(trials, 1 / (1 + np.exp(-eta / 2))),
    })


# ------------------------------------------------------------------ the two models


def hlm_model(df: pd.DataFrame, formula: str, family: str, parameterization: str, priors=(), preset=None, sigma=None):
    """hlm's model, with ``--prior`` texts, a ``--prior-preset`` and a ``--sigma-formula`` as
    the CLI passes them."""
    design = build_design(parse(formula, list(df.columns)), df)
    if sigma is not None:
        design.sigma = build_sigma_design(parse(f"~ {sigma}", list(df.columns)).fixed, df)
    return build_model(design, get_family(family), parse_priors(list(priors), preset=preset), parameterization=parameterization)


def _bambi_prior(prior):
    return bmb.Prior(prior.dist, **{k: np.asarray(v, dtype=float) for k, v in prior.args})


def bambi_priors(built, scale: dict[str, float] | None = None) -> dict[str, object]:
    """hlm's resolved priors (``built.priors``, by hlm's parameter names) as Bambi priors, by
    Bambi's term names. ``scale`` multiplies one prior's scale argument (negative controls)."""
    scale = scale or {}
    out: dict[str, object] = {}
    priors = dict(built.priors)
    for name, factor in ((n, s) for n, s in scale.items()):
        p = priors[name]
        key = "sigma" if "sigma" in p.kwargs else "beta" if "beta" in p.kwargs else "lam"
        priors[name] = type(p)(p.dist, tuple((k, v * factor if k == key else v) for k, v in p.args))
    design = built.design

    def population(slices, labels, prefix=""):
        terms = {}
        for term, sl in slices.items():
            pr = [priors[prefix + lab] for lab in labels[sl]]
            assert len({p.dist for p in pr}) == 1, f"{term}: one prior family per term"
            if len(pr) == 1:
                terms[term] = _bambi_prior(pr[0])
            else:  # a factor: one prior per column, in the design's column order
                terms[term] = bmb.Prior(pr[0].dist, **{k: np.array([p.kwargs[k] for p in pr], dtype=float) for k in pr[0].kwargs})
        return terms

    out.update(population(design.fixed_slices, design.x_labels))
    for g in design.groups:
        for eff in g.effect_names:
            out[eff] = bmb.Prior("Normal", mu=0.0, sigma=_bambi_prior(priors[f"{eff}_sigma"]))
    if design.sigma is not None:  # --sigma-formula: Bambi's distributional sigma component
        out["sigma"] = population(design.sigma.slices, list(design.sigma.labels), prefix="sigma_")
    for a in built.family.aux:
        if a in priors:
            out[a] = _bambi_prior(priors[a])
    return out


def bambi_model(df, formula: str, built, *, family: str | None = None, link: str | None = None, scale=None,
                sigma: str | None = None):
    """Bambi's model with hlm's priors. No auto-scaling and an error for a prior Bambi does not
    use (its default is a warning): a prior missed here cannot silently become Bambi's default."""
    fam, default_link = BAMBI_FAMILY[family or built.family.name]
    if sigma is not None:
        formula = bmb.Formula(formula, f"sigma ~ {sigma}")
    before = bmb.config["UNUSED_PRIORS"]
    bmb.config["UNUSED_PRIORS"] = "error"
    try:
        model = bmb.Model(formula, df, family=fam, link=link or default_link, priors=bambi_priors(built, scale),
                          noncentered=False, center_predictors=True, auto_scale=False)
    finally:
        bmb.config["UNUSED_PRIORS"] = before
    model.build()
    return model


# ------------------------------------------------------------------ natural parameters


def _untransformed(model):
    """The model with every value variable on its own (constrained) scale, its free variables
    by name, and its joint log density (no Jacobian terms: there are no transforms left)."""
    m = remove_value_transforms(model)
    free = {rv.name: m.rvs_to_values[rv] for rv in m.free_RVs}
    logp = pytensor.function(list(free.values()), m.logp(jacobian=False), mode=MODE, on_unused_input="ignore")
    return m, free, logp


def _aligned(value: np.ndarray, src_coords, dst_coords) -> np.ndarray:
    """Reorder the first axis of ``value`` from one model's level order to the other's."""
    if src_coords is None:
        return value
    assert sorted(map(str, src_coords)) == sorted(map(str, dst_coords)), (src_coords, dst_coords)
    pos = {str(c): i for i, c in enumerate(src_coords)}
    return value[[pos[str(c)] for c in dst_coords]]


def _coords(model, name):
    dims = model.named_vars_to_dims.get(name)
    return None if not dims else list(model.coords[dims[0]])


def random_natural_point(bmodel, built, rng) -> dict[str, np.ndarray]:
    """Values of Bambi's free variables (the natural parameters), drawn around plausible values."""
    m = bmodel.backend.model
    ip = m.initial_point()
    point = {}
    for rv in m.free_RVs:
        shape = ip[m.rvs_to_values[rv].name].shape
        name = rv.name
        if name.endswith("_sigma") or name in POSITIVE:
            lo, hi = {"nu": (3.0, 12.0), "kappa": (4.0, 20.0), "alpha": (1.0, 6.0)}.get(name, (0.3, 1.5))
            point[name] = rng.uniform(lo, hi, shape)
        elif name == "Intercept":
            point[name] = built.priors["Intercept"].kwargs["mu"] + rng.normal(0, 0.3, shape)
        else:  # slopes and group effects
            point[name] = rng.normal(0, 0.4, shape)
    return point


class HlmAtNaturalPoint:
    """hlm's joint log density as a density of the natural parameters.

    ``n = g(u)`` maps hlm's free variables ``u`` to the natural parameters; the natural
    parameters hlm samples as they are (SDs, family parameters, sometimes a slope or a
    centered group effect) are ``u`` themselves, the others (``det``) are deterministics,
    affine in the remaining free variables (``rest``) given the first: ``det = J rest + c``.
    """

    def __init__(self, built, natural_names: list[str]):
        self.m, self.free, self.logp = _untransformed(built.model)
        centered = {"Intercept": CENTERED_INTERCEPT, "sigma_Intercept": CENTERED_SIGMA_INTERCEPT}
        self.names = {n: (centered[n] if centered.get(n) in self.m.named_vars else n) for n in natural_names}
        hlm_names = set(self.names.values())
        missing = [n for n in hlm_names if n not in self.m.named_vars]
        assert not missing, f"hlm's model has no variable {missing} (its variables: {sorted(self.m.named_vars)})"
        self.fixed = [n for n in self.free if n in hlm_names]
        self.rest = [n for n in self.free if n not in hlm_names]
        self.det = [n for n in hlm_names if n not in self.free]
        # the user-scale intercept (a deterministic of the centered one and the slopes) rides along
        self.user_intercept = "Intercept" if "Intercept" in self.m.named_vars and "Intercept" not in hlm_names else None
        extra = [self.m["Intercept"]] if self.user_intercept else []
        outs = self.m.replace_rvs_by_values([self.m[n] for n in self.det] + extra)
        flat = pt.concatenate([pt.atleast_1d(o).ravel() for o in outs[: len(self.det)]]) if self.det else pt.zeros(0)
        rest_vars = [self.free[n] for n in self.rest]
        jac = pytensor.gradient.jacobian(flat, rest_vars, vectorize=True) if rest_vars else []
        jac = [j.reshape((flat.shape[0], -1)) for j in jac]
        intercept = pt.atleast_1d(outs[-1]) if extra else pt.zeros(0)
        self.map = pytensor.function(list(self.free.values()), [flat, intercept, *jac], mode=MODE, on_unused_input="ignore")
        ip = self.m.initial_point()
        self.shapes = {n: ip[self.free[n].name].shape for n in self.free}

    def logp_natural(self, bpoint: dict[str, np.ndarray], bmodel) -> float:
        bm = bmodel.backend.model
        nat = {}  # hlm's names -> values in hlm's level order
        for bname, hname in self.names.items():
            nat[hname] = _aligned(np.asarray(bpoint[bname], dtype=float), _coords(bm, bname), _coords(self.m, hname))
        u = {n: nat[n] if n in nat else np.zeros(self.shapes[n]) for n in self.free}
        args = [u[n] for n in self.free]
        flat0, _, *jac = self.map(*args)
        target = np.concatenate([np.atleast_1d(nat[n]).ravel() for n in self.det]) if self.det else np.zeros(0)
        J = np.hstack(jac) if jac else np.zeros((0, 0))
        assert J.shape[0] == J.shape[1], (
            f"hlm samples {J.shape[1]} coordinates for {J.shape[0]} natural values ({self.rest} -> {self.det}): "
            "not a change of variables")
        sol = np.linalg.solve(J, target - flat0) if J.size else np.zeros(0)
        k = 0
        for n in self.rest:
            size = int(np.prod(self.shapes[n]))
            u[n] = sol[k : k + size].reshape(self.shapes[n])
            k += size
        back, intercept, *_ = self.map(*[u[n] for n in self.free])
        # hlm's own deterministics give the natural point back (the map is affine, as assumed)
        np.testing.assert_allclose(back, target, rtol=1e-9, atol=1e-9)
        self.last_intercept = float(intercept[0]) if intercept.size else None
        logdet = np.linalg.slogdet(J)[1] if J.size else 0.0
        return float(self.logp(*[u[n] for n in self.free])) - float(logdet)


def bambi_logp(bmodel):
    m, free, logp = _untransformed(bmodel.backend.model)
    return lambda point: float(logp(*[np.asarray(point[n], dtype=float) for n in free]))


def bambi_user_intercept(bmodel, point) -> float | None:
    """Bambi's intercept on the user's scale: its (centered) Intercept minus the slopes times
    the column means, as Bambi computes it after sampling (``backend/pymc.py``)."""
    parent = bmodel.family.likelihood.parent
    component = bmodel.backend.distributional_components[parent]
    if getattr(component, "design_matrix_without_intercept", None) is None:
        return None
    names = list(bmodel.parameters[parent].common_terms)
    b = np.concatenate([np.atleast_1d(point[n]) for n in names])
    return float(point["Intercept"] - component.design_matrix_without_intercept.mean(axis=0) @ b)


# (formula, family, parameterization, priors, preset, sigma) -> (built, HlmAtNaturalPoint), for
# the module's one data frame: each hlm model is compiled once, the negative controls reuse it
_HLM: dict[tuple, tuple] = {}


def compare(df, hlm_formula, bambi_formula, family, parameterization, *, n_points=3, seed=0, priors=(), preset=None,
            sigma=None, **bambi_kw):
    """(hlm, Bambi) natural log densities at ``n_points`` random natural points, and hlm's
    side (each hlm model is compiled once per test session: the negative controls reuse it)."""
    key = (hlm_formula, family, parameterization, tuple(priors), preset, sigma)
    if key not in _HLM:
        _HLM[key] = (hlm_model(df, hlm_formula, family, parameterization, priors, preset, sigma), None)
    built, hlm = _HLM[key]
    bmodel = bambi_model(df, bambi_formula, built, sigma=sigma, **bambi_kw)
    natural = [rv.name for rv in bmodel.backend.model.free_RVs]
    if hlm is None:
        hlm = HlmAtNaturalPoint(built, natural)
        _HLM[key] = (built, hlm)
    # Bambi's parameters are exactly hlm's (ParamInfo: what summary.csv reports)
    info = built.params
    ours = {*info.population, *info.family, *(v for vs in info.group_effects.values() for v in vs),
            *(v for vs in info.group_sds.values() for v in vs)}
    assert ours == set(natural), (sorted(ours), sorted(natural))
    bambi = bambi_logp(bmodel)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_points):
        point = random_natural_point(bmodel, built, rng)
        out.append((hlm.logp_natural(point, bmodel), bambi(point)))
        if hlm.user_intercept:  # both report the same intercept on the user's scale
            assert hlm.last_intercept == pytest.approx(bambi_user_intercept(bmodel, point), rel=1e-10, abs=1e-10)
    return np.array(out), hlm


# ------------------------------------------------------------------ the cases

CROSSED = "1 + x + cond + (1|a) + (1|b)"
FORMULAS = {
    # name: (hlm's right-hand side, Bambi's)
    "crossed": (CROSSED, CROSSED),
    "nested": ("1 + x + (1|site/plot)", "1 + x + (1|site/plot)"),
    "nested_explicit": ("1 + x + cond + (1|site) + (1|site:plot)", "1 + x + cond + (1|site) + (1|site:plot)"),
    # Bambi's (x|a) has no correlation: it is lme4's (x||a)
    "slopes": ("1 + x + cond + (x||a)", "1 + x + cond + (x|a)"),
    "slopes_split": ("1 + x + (1|a) + (0 + x|a)", "1 + x + (1|a) + (0 + x|a)"),
    "intercept_only": ("1 + (1|a)", "1 + (1|a)"),
}

# the default run: every family once, every structure, both parameterizations (~2-3 s a case)
FAST = [
    ("gaussian", "crossed", "noncentered"),
    ("t", "nested", "centered"),
    ("bernoulli", "slopes", "noncentered"),
    ("binomial", "nested_explicit", "centered"),
    ("poisson", "slopes_split", "centered"),
    ("negativebinomial", "crossed", "centered"),
    ("gamma", "slopes", "centered"),
    ("beta", "intercept_only", "noncentered"),
    ("lognormal", "nested", "noncentered"),
]
# the whole matrix (make test-slow, or pytest -m '')
FULL = [(fam, f, p) for fam in BAMBI_FAMILY for f in FORMULAS for p in ("noncentered", "centered")]
CASES = FAST + [pytest.param(*c, marks=pytest.mark.slow) for c in FULL if c not in FAST]


def _formula(family: str, rhs: str) -> str:
    return f"{RESPONSE[family]} ~ {rhs}"


def _id(case) -> str:
    values = case.values if hasattr(case, "values") else case
    return "-".join(values)


@pytest.fixture(autouse=True, scope="module")
def _no_tracebacks_on_graph_nodes():
    # PyTensor records a stack trace on every graph node it creates: a third of this
    # module's time, and nothing here reads them
    with pytensor.config.change_flags(traceback__limit=0):
        yield


@pytest.mark.parametrize(("family", "structure", "parameterization"), CASES, ids=[_id(c) for c in CASES])
def test_hlm_log_density_equals_bambi(frame, family, structure, parameterization):
    hlm_rhs, bambi_rhs = FORMULAS[structure]
    lp, hlm = compare(frame, _formula(family, hlm_rhs), _formula(family, bambi_rhs), family, parameterization)
    assert np.all(np.isfinite(lp)), lp
    assert np.ptp(lp[:, 1]) > 1e-3, lp  # the points differ: not the comparison of one constant
    np.testing.assert_allclose(lp[:, 0], lp[:, 1], rtol=1e-8, atol=1e-7)


def test_the_comparison_goes_through_hlm_reparameterizations(frame):
    """The cases above are not identities: hlm samples other coordinates than Bambi (the
    centered intercept, the QR rotation, non-centered or hierarchically centered effects)."""
    f = _formula("gaussian", CROSSED)
    _, hlm = compare(frame, f, f, "gaussian", "noncentered", n_points=1)
    assert hlm.names["Intercept"] == CENTERED_INTERCEPT and hlm.user_intercept == "Intercept"
    assert {"_b_qr", "1|a_offset", "1|b_offset"} <= set(hlm.rest)
    assert {"x", "cond", "1|a", "1|b"} <= set(hlm.det)
    f = _formula("t", "1 + x + (1|site/plot)")
    _, hlm = compare(frame, f, f, "t", "centered", n_points=1)
    assert {"_mean(1|site)", "_mean(1|site:plot)"} <= set(hlm.rest)


@pytest.mark.parametrize(("family", "structure", "parameterization", "priors", "preset"), [
    # brms's defaults: flat slopes (no QR rotation then), StudentT intercept, HalfStudentT SDs and sigma
    ("gaussian", "crossed", "noncentered", (), "brms"),
    # rstanarm's: Exponential SDs, autoscaled Normal slopes
    ("poisson", "slopes", "centered", (), "rstanarm"),
    # --prior by class, by printed name and by parameter; a non-Normal slope prior (no QR rotation)
    ("gaussian", "slopes", "centered",
     ("b=StudentT(3, 0, 2)", "sd(Intercept|a)=Exponential(2)", "x|a=HalfNormal(0.5)", "sigma=Gamma(2, 1)"), None),
    ("negativebinomial", "nested_explicit", "noncentered", ("Intercept=Normal(1, 0.5)", "alpha=Exponential(1)"), None),
], ids=["brms-preset", "rstanarm-preset", "user-priors", "user-aux-prior"])
def test_presets_and_user_priors_equal_bambi(frame, family, structure, parameterization, priors, preset):
    hlm_rhs, bambi_rhs = FORMULAS[structure]
    lp, hlm = compare(frame, _formula(family, hlm_rhs), _formula(family, bambi_rhs), family, parameterization,
                      priors=priors, preset=preset)
    assert np.all(np.isfinite(lp)) and np.ptp(lp[:, 1]) > 1e-3, lp
    np.testing.assert_allclose(lp[:, 0], lp[:, 1], rtol=1e-8, atol=1e-7)


@pytest.mark.parametrize(("family", "structure", "sigma"), [("gaussian", "crossed", "x + cond"), ("t", "slopes", "x")])
def test_sigma_formula_equals_bambi_distributional_model(frame, family, structure, sigma):
    """``--sigma-formula`` is Bambi's distributional model ``bmb.Formula(..., "sigma ~ ...")``
    (log link, predictors centered: hlm samples ``_sigma_Intercept_c``)."""
    hlm_rhs, bambi_rhs = FORMULAS[structure]
    lp, hlm = compare(frame, _formula(family, hlm_rhs), _formula(family, bambi_rhs), family, "noncentered", sigma=sigma)
    assert hlm.names["sigma_Intercept"] == CENTERED_SIGMA_INTERCEPT
    assert np.all(np.isfinite(lp)) and np.ptp(lp[:, 1]) > 1e-3, lp
    np.testing.assert_allclose(lp[:, 0], lp[:, 1], rtol=1e-8, atol=1e-7)


# ------------------------------------------------------------------ negative controls


@pytest.mark.parametrize("target", ["cond[c2]", "1|a_sigma", "sigma", "Intercept"])
def test_a_prior_scale_off_by_ten_percent_is_detected(frame, target):
    f = _formula("gaussian", CROSSED)
    lp, _ = compare(frame, f, f, "gaussian", "noncentered", n_points=2, scale={target: 1.1})
    assert np.all(np.abs(lp[:, 0] - lp[:, 1]) > 1e-3), lp


@pytest.mark.parametrize(("family", "structure", "parameterization", "link"), [
    ("bernoulli", "slopes", "noncentered", "probit"),
    ("binomial", "nested_explicit", "centered", "cloglog"),
    ("gaussian", "crossed", "noncentered", "log"),
])
def test_a_different_link_is_detected(frame, family, structure, parameterization, link):
    hlm_rhs, bambi_rhs = FORMULAS[structure]
    lp, _ = compare(frame, _formula(family, hlm_rhs), _formula(family, bambi_rhs), family, parameterization, n_points=2, link=link)
    assert np.all(np.isfinite(lp)) and not np.allclose(lp[:, 0], lp[:, 1], rtol=1e-3), lp
