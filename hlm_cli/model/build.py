"""From a design, a family and priors to a PyMC model.

hlm builds the PyMC graph itself (in Bambi's spec -> backend split) rather than through
``bambi.Model``, because lme4/brms semantics need more than Bambi offers: correlated group
effects (LKJ), ``||``, known standard errors (``se()``), zero-sum and centered group terms,
and group terms stored as level indices instead of dense matrices. Families and default
priors follow Bambi's tables (:mod:`hlm_cli.model.families`, :mod:`hlm_cli.model.priors`).

Centered population design (as brms does). When the formula has an intercept, the
population-level coefficients are sampled on a centered design: every non-intercept column
of X minus its column mean, with a centered intercept ``_Intercept_c`` (the linear predictor
at the mean of the predictors). The user's intercept is the deterministic
``Intercept = _Intercept_c - sum_j b_j * mean(X_j)``, stored in the posterior under its usual
name, so summaries, predictions and every later command see the same ``Intercept`` and
coefficients as an uncentered fit; the model (likelihood and priors on the slopes) is
unchanged, only the sampled coordinates are. Without centering, an intercept far from the
data's centre trades off against every slope (R-hat 1.07 on a Municipalities-like Gamma
regression on log(revenues), log(grants) with means near 10; see tests/unit/test_centering.py
and tests/e2e/test_real_data_e2e.py). The same holds for a ``--sigma-formula`` with an
intercept (``_sigma_Intercept_c``, reported as ``sigma_Intercept``). When every slope has a
Normal prior (the default), the centered slopes are also rotated by a QR factorization of
their columns (rstanarm's QR, but with the user's priors kept exactly: see
:func:`_population`), which removes the trade-off between correlated columns such as
``recipe[B]`` and ``recipe[B]:temp`` (lme4's cake: min bulk ESS 317 centered only, 4000+
rotated, 4 x 1000 draws).

The prior given for ``Intercept`` (``--prior "Intercept=..."``) is therefore the prior of the
centered intercept, the expected response (on the link scale) at the mean of the
predictors, as in brms (``Intercept`` vs ``b_Intercept``) and rstanarm; its default is
Normal(mean(y), 2.5 sd(y)) (Normal(0, 2.5) on the logit and log scales), without Bambi's
widening for uncentered predictors. The column means are part of the data (the ``_priors``
vector, see :func:`_prior_arg`), not constants of the graph, so one compiled model serves
every dataset of the same structure. Group-level designs are not centered: ``(age|Subject)``
keeps its meaning (effects and the intercept-slope correlation at age 0).

Posterior variable names follow Bambi: ``Intercept``, one variable per population-level term
(``Days``, ``genotype`` with a ``genotype_dim`` dimension), group effects ``1|gene`` and
``Days|Subject`` on lme4's scale (deviations from the population-level effects), their SDs
``1|gene_sigma``, correlations ``cor(Intercept,Days|Subject)``, and family parameters
``sigma``, ``nu``, ``alpha``, ``kappa``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from hlm_cli.errors import FormulaError, PriorError, closest_match
from hlm_cli.formula.design import Design, GroupDesign
from hlm_cli.formula.priors import sd_display_name
from hlm_cli.model import parameterization as param
from hlm_cli.model.families import Family
from hlm_cli.model.priors import Prior, Scale, check_positive_target, preset_for

OBS_DIM = "__obs__"
PRIORS_DATA = "_priors"  # pm.Data vector of every prior hyperparameter
SUFFSTAT_LOGLIK = "_loglik_crossproducts"  # the likelihood term of a large gaussian model (model/suffstat.py)


@dataclass
class ParamInfo:
    """What each posterior variable is, for summaries and later commands."""

    population: list[str] = field(default_factory=list)
    group_effects: dict[str, list[str]] = field(default_factory=dict)  # factor -> effect vars
    group_sds: dict[str, list[str]] = field(default_factory=dict)  # factor -> sd vars
    correlations: dict[str, list[str]] = field(default_factory=dict)  # factor -> cor vars
    family: list[str] = field(default_factory=list)

    @property
    def top_level(self) -> list[str]:
        sds = [v for vs in self.group_sds.values() for v in vs]
        cors = [v for vs in self.correlations.values() for v in vs]
        return self.population + sds + cors + self.family

    def to_json(self) -> dict:
        return {
            "population": self.population,
            "group_effects": self.group_effects,
            "group_sds": self.group_sds,
            "correlations": self.correlations,
            "family": self.family,
        }


@dataclass
class BuiltModel:
    model: object  # pymc.Model
    design: Design
    family: Family
    response_name: str
    priors: dict[str, Prior]  # every prior actually used, by parameter name
    params: ParamInfo
    parameterization: dict[str, param.Choice]
    structure_key: str
    data_vars: dict[str, np.ndarray]  # pm.Data names -> arrays (to swap data in)
    # "rows" (one density term per row) or "cross-products" (a large gaussian: model/suffstat.py)
    likelihood: str = "rows"


def residual_structure(design: Design, family: Family) -> Design:
    """The design with its residual AR(1) settled for ``family`` (docs/covariance.md).

    In a gaussian model an ``ar1(time | id)`` term is the residual covariance within each
    group (no white noise on top, as the issue and nlme's ``corAR1`` have it): the term leaves
    ``groups`` and becomes :attr:`Design.autocor`, the same model as brms's ``ar(time, gr)``.
    Other families keep it as a latent AR(1) effect per (group, time). Refused: ``ar()``
    outside the gaussian family, two residual structures, and ``ar()``/gaussian ``ar1()``
    with ``se()`` or ``--sigma-formula``.
    """
    import dataclasses

    ar1 = [g for g in design.groups if g.cov == "ar1"]
    autocor = design.autocor
    if design.autocor is not None and family.name != "gaussian":
        raise FormulaError(f"{design.autocor.label} (residual autocorrelation) needs --family gaussian, not {family.name}",
                           hint=f"for {family.name} models write a latent AR(1) effect: ar1({design.autocor.time} | "
                           f"{':'.join(design.autocor.gr) or 'group'})")
    if family.name == "gaussian" and ar1:
        if len(ar1) > 1 or autocor is not None:
            raise FormulaError("a gaussian model takes one residual AR(1) structure: one ar1() term or one ar() term",
                               hint="in a gaussian model ar1(time | id) and ar(time = time, gr = id) are the same model; keep one")
        g = ar1[0]
        if g.resid is None:
            raise FormulaError(g.duplicate or f"{g.term.label}: two rows at the same time",
                               hint="in a gaussian model ar1() is the residual correlation and needs one row per "
                               "group and time: average duplicate rows, or check the grouping column")
        autocor = g.resid
        design = dataclasses.replace(design, groups=[h for h in design.groups if h is not g], autocor=autocor)
    if autocor is not None and (design.se is not None or design.sigma is not None):
        raise FormulaError(f"{autocor.label} cannot be combined with {'se()' if design.se is not None else '--sigma-formula'}",
                           hint="the residual AR(1) has one stationary SD sigma; drop one of the two")
    terms = getattr(design, "terms", None)
    if autocor is not None and terms is not None and (terms.censored or terms.truncated):
        # each row's likelihood is conditional on the previous row's observed value, which a
        # censored or truncated row does not have
        raise FormulaError(f"{autocor.label} cannot be combined with {'cens()' if terms.censored else 'trunc()'}",
                           hint="the residual AR(1) conditions each row on the previous observed value; use a latent "
                                "AR(1) in a non-gaussian family or drop the censoring/truncation")
    return design


RHO_DISTS = ("Uniform", "Beta")


def rho_prior_default(lower: float) -> Prior:
    """A structured correlation's default prior: uniform over its valid range (brms's
    uniform(-1, 1) for ar; (lower, 1) for cs with K columns: lower = -1 / (K - 1))."""
    return Prior("Uniform", (("lower", float(lower)), ("upper", 1.0)))


def _check_rho_prior(name: str, prior: Prior, lower: float) -> None:
    kw = prior.kwargs
    ok = prior.dist == "Beta" and lower <= 0 or (
        prior.dist == "Uniform" and kw["lower"] >= lower - 1e-12 and kw["upper"] <= 1.0 and kw["lower"] < kw["upper"])
    if not ok:
        raise PriorError(f"the prior for {name!r} must be Uniform(lower, upper) within ({lower:g}, 1) or Beta(a, b)",
                         hint=f'e.g. --prior "{name}=Uniform({lower:g}, 1)"')


def ar1_lags(g: GroupDesign) -> np.ndarray:
    """(K, K) lags between an ar1() term's times in units of its smallest gap (0 above the
    diagonal): the exponents of the lower Cholesky factor (see _structured_term)."""
    E = (g.times[:, None] - g.times[None, :]) / g.unit
    return np.where(E >= 0, E, 0.0)


def rho_lower(g_or_rows) -> float:
    """The smallest allowed correlation: -1 for an AR(1) on a grid of whole lags, 0 when some
    lag is fractional (rho ** lag needs rho > 0), -1/(K-1) for cs with K columns."""
    if isinstance(g_or_rows, GroupDesign):
        if g_or_rows.cov == "cs":
            return -1.0 / (len(g_or_rows.columns) - 1)
        E = ar1_lags(g_or_rows)
        return -1.0 if np.all(np.abs(E - np.round(E)) < 1e-8) else 0.0
    return -1.0 if g_or_rows.integer_lags else 0.0


def resolve_priors(design: Design, family: Family, user: dict[str, Prior]) -> tuple[dict[str, Prior], dict[str, str]]:
    """Every parameter's prior: defaults scaled as Bambi does, overridden by the user's.

    Returns the priors by parameter name, and which user key (if any) set each.
    User keys may be a parameter name, a population-level term or column label, a class
    (``b`` all population slopes, ``sd`` all group SDs, ``cor`` all correlation matrices),
    a group effect (``1|gene`` or ``1|gene_sigma``: its SD), or ``cor(FACTOR)``; the names the
    summary table prints are accepted too: ``sd(Intercept|gene)``, ``sd(Days|Subject)``, and
    ``cor(Intercept,Days|Subject)`` (the correlation matrix of a two-column term).
    Defaults are hlm's, or those of ``user.preset`` (``--prior-preset brms|rstanarm``, see
    :class:`hlm_cli.model.priors.Preset`) when ``user`` is a :class:`UserPriors` with one.
    """
    design = residual_structure(design, family)
    scale = Scale.for_response(family, design.y)
    preset = preset_for(getattr(user, "preset", None), family, design.y)
    priors: dict[str, Prior] = {}
    used: dict[str, str] = {}
    valid: set[str] = {"b", "sd", "cor"}

    def pick(name: str, *keys: str, default: Prior, positive: bool = False) -> None:
        for key in keys:
            if key in user:
                if positive:
                    check_positive_target(name, user[key])
                priors[name] = user[key]
                used[key] = name
                return
        priors[name] = default

    # population level: slopes first (the intercept's default depends on them)
    slope_sigmas, x_means = [], []
    # a term as written (``recipe:temp``) also names every column it was split into
    written = {lab: t for t, labs in (design.term_labels or {}).items() for lab in labs}
    for term, sl in design.fixed_slices.items():
        if term == "Intercept":
            continue
        cols = design.X[:, sl]
        labels = design.x_labels[sl]
        categorical = design.fixed_kinds.get(term) in ("categoric",)
        for j, label in enumerate(labels):
            s = scale.slope_sigma(cols[:, j], categorical=categorical)
            slope_sigmas.append(s)
            x_means.append(float(cols[:, j].mean()))
            whole = written.get(label, term)
            default = Prior("Normal", (("mu", 0.0), ("sigma", s))) if preset is None else preset.slope(cols[:, j])
            pick(label, label, term, whole, "b", default=default)
            valid.update({label, term, whole})
    if "Intercept" in design.fixed_slices:
        valid.add("Intercept")
        # the intercept is sampled centered (see the module docstring): its prior is that of the
        # response at the predictors' means, so Bambi's widening for uncentered predictors
        # (slope_sigmas * x_means) does not apply
        centered = column_means(design.X, design.x_labels) is not None
        sig, xm = (np.array([]), np.array([])) if centered else (np.array(slope_sigmas), np.array(x_means))
        pick("Intercept", "Intercept", default=scale.intercept(sig, xm) if preset is None else preset.intercept())

    for g in design.groups:
        if g.cov == "ar1":  # one SD for the whole term (the stationary SD of the latent process)
            sd_name = g.sd_names[0]
            printed = sd_display_name(sd_name)
            valid.update({sd_name, printed, sd_name.removesuffix("_sigma")})
            pick(sd_name, sd_name, printed, sd_name.removesuffix("_sigma"), f"sd({g.factor})", "sd",
                 default=scale.group_sd(None) if preset is None else preset.group_sd(), positive=True)
        if g.rho_name is not None:
            valid.add(g.rho_name)
            pick(g.rho_name, g.rho_name, default=rho_prior_default(rho_lower(g)))
            _check_rho_prior(g.rho_name, priors[g.rho_name], rho_lower(g))
        if g.cov == "ar1":
            continue
        valid.add(f"cor({g.factor})")
        for col, eff in zip(g.columns, g.effect_names, strict=True):
            sd_name = f"{eff}_sigma"
            printed = sd_display_name(sd_name)  # as the summary table prints it: sd(Intercept|gene)
            valid.update({eff, sd_name, printed})
            z = None if col == "Intercept" else g.Z[:, g.columns.index(col)]
            default = scale.group_sd(z) if preset is None else preset.group_sd()
            pick(sd_name, sd_name, printed, eff, f"sd({g.factor})", "sd", default=default, positive=True)
        if g.term.correlated and len(g.columns) > 1 and not g.cov:
            cor_name = f"cor({g.factor})"
            # a pair's printed name names the matrix only when it is the term's one correlation
            pairs = [f"cor({a},{b}|{g.factor})" for i, a in enumerate(g.columns) for b in g.columns[i + 1 :]]
            for pair in pairs if len(pairs) > 1 else ():
                if pair in user:
                    raise PriorError(f"--prior names {pair!r}, one correlation of a {len(g.columns)}-column term",
                                     hint=f"LKJ is a prior for the whole matrix: --prior \"{cor_name}=LKJ(2)\"")
            valid.update(pairs if len(pairs) == 1 else ())
            pick(cor_name, cor_name, *(pairs if len(pairs) == 1 else ()), "cor",
                 default=Prior("LKJ", (("eta", 1.0),)) if preset is None else preset.cor())
            if priors[cor_name].dist != "LKJ":
                raise PriorError(f"the prior for {cor_name} must be LKJ(eta)", hint='e.g. --prior "cor=LKJ(2)"')

    if design.autocor is not None:
        rho = design.autocor.rho_name
        valid.add(rho)
        pick(rho, rho, default=rho_prior_default(rho_lower(design.autocor)))
        _check_rho_prior(rho, priors[rho], rho_lower(design.autocor))
    for sm in design.smooths:  # s(): the SD of the penalized coefficients (brms's sds)
        valid.update({sm.sd_name, sm.label, "sds"})
        default = scale.group_sd(None) if preset is None else preset.group_sd()
        pick(sm.sd_name, sm.sd_name, sm.label, "sds", default=default, positive=True)

    aux = list(family.aux)
    se_mode = design.se is not None
    if se_mode and not design.formula.response.se_sigma:
        aux = [a for a in aux if a != "sigma"]
    if design.sigma is not None:
        # log-scale regression for sigma: Normal(log sd(y), 1.5) intercept, Normal(0, 1) slopes
        aux = [a for a in aux if a != "sigma"]
        for var, labels in design.sigma.names().items():
            for lab in labels:
                name = f"sigma_{lab}"
                default = Prior("Normal", (("mu", float(np.log(scale.sigma)) if lab == "Intercept" else 0.0), ("sigma", 1.5 if lab == "Intercept" else 1.0)))
                valid.update({name, var})
                pick(name, name, var, default=default if preset is None else preset.sigma_coef(lab, default))
    if design.dpar is not None:
        # logit-scale regression for zi / hu: Normal(0, 1.5) intercept (close to uniform on the
        # probability at the predictors' means), Normal(0, 2.5 / sd(x)) slopes (hlm's logit rule)
        dp = design.dpar
        aux = [a for a in aux if a != dp.prefix]
        for var, labels in dp.names().items():
            for lab in labels:
                name = f"{dp.prefix}_{lab}"
                sd = 1.5 if lab == "Intercept" else 2.5 / float(np.std(dp.X[:, list(dp.labels).index(lab)]) or 1.0)
                valid.update({name, var})
                pick(name, name, var, default=Prior("Normal", (("mu", 0.0), ("sigma", sd))))
    for a in aux:
        valid.add(a)
        default = family.default_prior(a, scale)
        pick(a, a, default=default if preset is None else preset.aux(a, default), positive=not family.ordinal)

    for key in user:
        if key not in valid:
            raise PriorError(
                f"--prior names {key!r}, which is not a parameter of this model",
                hint=closest_match(key, sorted(valid), what="parameters"),
            )
    for name in used.values():
        if priors[name].dist == "LKJ" and not name.startswith("cor("):
            raise PriorError(f"LKJ is a prior for correlation matrices, not for {name!r}", hint='use it as --prior "cor=LKJ(2)"')
    return priors, used


CENTERED_INTERCEPT = "_Intercept_c"  # the sampled intercept of a centered design
CENTERED_SIGMA_INTERCEPT = "_sigma_Intercept_c"
QR_SLOPES = "_b_qr"  # the rotated population slopes theta = L b (see _population)


def column_means(X: np.ndarray, labels: list[str]) -> np.ndarray | None:
    """Column means to center a design on (0 for the intercept column), or None when the design
    has no intercept or nothing besides it (then it is sampled as it is)."""
    labels = list(labels)
    if "Intercept" not in labels or X.shape[1] < 2:
        return None
    means = np.asarray(X, dtype=float).mean(axis=0)
    means[labels.index("Intercept")] = 0.0
    return means


# While a model is being built: registers prior hyperparameters as pm.Data (see _dist).
_prior_data = None


def _prior_arg(name: str, arg: str, value):
    """A prior's hyperparameter as an element (or slice) of the ``_priors`` pm.Data vector, so
    that data-scaled default priors (Bambi's auto-scaling) are not compiled into the model as
    constants: one compiled model then serves every input of the same structure (hlm batch,
    repeat fits), the values being swapped in with the data. One vector rather than one
    pm.Data per hyperparameter: nutpie's compiled callback unrolls a loop over the shared
    variables, and each one costs about 0.4 s of numba compilation on a cold start."""
    value = np.asarray(value, dtype=float) if not np.isscalar(value) else np.asarray(float(value))
    if _prior_data is None:
        return value
    return _prior_data(value)


def _dist(pm, name: str, prior: Prior, **kw):
    kwargs = {k: _prior_arg(name, k, v) for k, v in prior.args}
    if prior.dist == "Flat":
        return pm.Flat(name, **kw)
    if prior.dist == "HalfFlat":
        return pm.HalfFlat(name, **kw)
    return getattr(pm, prior.dist)(name, **kwargs, **kw)


def _structure_key(design: Design, family: Family, priors: dict[str, Prior], choices, crossproducts=None) -> str:
    blob = {
        "formula": design.formula.text,
        "family": family.name if family.link == _default_link(family.name) else f"{family.name}({family.link})",
        # prior families and argument shapes only: their values are pm.Data (see _prior_arg),
        # except LKJ's eta, which is a constant of the graph
        "priors": {k: (v.dist, [(a, np.shape(x)) for a, x in v.args], v.kwargs.get("eta") if v.dist == "LKJ" else None)
                   for k, v in sorted(priors.items())},
        "X": [design.X.shape, design.x_labels],
        "groups": [(g.term.label, len(g.levels), g.Z.shape, g.columns) for g in design.groups],
        # a residual AR's rows and lags are data (pm.Data); an ar1() term's lags are constants
        "autocor": None if design.autocor is None else design.autocor.label,
        "ar1": [ar1_lags(g).tolist() for g in design.groups if g.cov == "ar1"],
        "n": design.n,
        "param": {k: (v.kind, v.on_mean, v.parent, v.zero_sum, v.shifted, v.intercept_centered, v.between)
                  for k, v in sorted(choices.items())},
        "offset": design.offset is not None,
        "se": design.se is not None,
        "trials": design.trials is not None,
        "sigma": None if design.sigma is None else [design.sigma.text, design.sigma.labels],
        **({} if design.dpar is None else {"dpar": [design.dpar.prefix, design.dpar.text, design.dpar.labels,
                                                     column_means(design.dpar.X, design.dpar.labels) is not None]}),
        **({} if family.link == _default_link(family) else {"link": family.link}),
        # centered population (and sigma) designs: a different graph from the uncentered one
        "centered": [column_means(design.X, design.x_labels) is not None,
                     design.sigma is not None and column_means(design.sigma.X, design.sigma.labels) is not None],
        "qr": _qr_plan(design, priors) is not None,
    }
    if crossproducts is not None:  # the likelihood from cross-products: another graph
        blob["suffstat"] = crossproducts
    if design.response_levels is not None:  # ordinal: the number of thresholds
        blob["categories"] = len(design.response_levels)
    if design.smooths:  # (absent otherwise: the keys of models without smooths are unchanged)
        blob["smooths"] = [(sm.label, sm.Z.shape) for sm in design.smooths]
    if getattr(design, "terms", None) is not None:  # only then: other models keep their cache keys
        blob["terms"] = design.terms.structure()
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _default_link(family) -> str:
    """A family's default link (its first in formula/families.LINKS); ``family`` a row or a name."""
    from hlm_cli.formula.families import LINKS

    return LINKS[family if isinstance(family, str) else family.name][0]


def build_model(
    design: Design,
    family: Family,
    user_priors: dict[str, Prior] | None = None,
    *,
    parameterization: str = "auto",
    likelihood: str = "auto",
) -> BuiltModel:
    """Build the PyMC model.

    Parameters
    ----------
    design : Design
        From :func:`hlm_cli.formula.design.build_design`.
    family : Family
    user_priors : dict, optional
        From :func:`hlm_cli.model.priors.parse_priors`.
    parameterization : {"auto", "centered", "noncentered", "zerosum"}
        How group-level terms are sampled; see :mod:`hlm_cli.model.parameterization`.
    likelihood : {"auto", "rows"}
        "rows" keeps one density term per row even for large gaussian data (a caller that
        swaps the response in afterwards, as SBC does); "auto" may sum cross-products
        instead (:mod:`hlm_cli.model.suffstat`).

    Returns
    -------
    BuiltModel
    """
    import pymc as pm
    import pytensor.tensor as pt

    design = residual_structure(design, family)
    priors, _ = resolve_priors(design, family, {} if user_priors is None else user_priors)  # keeps a preset
    ip = priors.get("Intercept")
    choices = param.choose(design, family, parameterization, zero_sum_ok=ip is None or ip.dist in ("Normal", "Flat"))
    for g in design.groups:  # structured terms are sampled non-centered (see _structured_term)
        if g.cov and len(g.columns) > 1:
            choices[g.term.label] = param.Choice("noncentered", None, f"{g.cov}() covariance structure")
    info = ParamInfo()
    resp = design.formula.response
    response_name = resp.expr if resp.expr.isidentifier() else "y"

    coords: dict[str, list] = {OBS_DIM: np.arange(design.n)}
    for term, sl in design.fixed_slices.items():
        if sl.stop - sl.start > 1 or design.x_labels[sl][0] != term:
            coords[f"{term}_dim"] = [lab[len(term) :].strip("[]") or lab for lab in design.x_labels[sl]]
    for g in design.groups:
        coords[g.factor] = g.levels
    for sm in design.smooths:
        coords[smooth_dim(sm)] = list(range(1, sm.Z.shape[1] + 1))

    data_vars: dict[str, np.ndarray] = {}
    global _prior_data
    with pm.Model(coords=coords) as model:

        def data(name: str, value: np.ndarray, dims=None):
            data_vars[name] = value
            return pm.Data(name, value, dims=dims)

        # every prior hyperparameter in one vector (see _prior_arg); its values are set once
        # the graph is built, the placeholder only fixes its rank (length 2: not broadcastable)
        hyper: list[float] = []
        hvec = pm.Data(PRIORS_DATA, np.zeros(2))

        def prior_data(value: np.ndarray):
            flat = np.atleast_1d(value).ravel()
            start = len(hyper)
            hyper.extend(float(v) for v in flat)
            part = hvec[start : start + flat.size]
            return part[0] if value.ndim == 0 else part.reshape(value.shape)

        _prior_data = prior_data
        try:
            crossproducts = _build_body(pm, pt, design, family, priors, choices, info, response_name, data,
                                        rows_only=likelihood == "rows")
        finally:
            _prior_data = None
        values = np.array(hyper, dtype=float) if hyper else np.zeros(2)
        model.set_data(PRIORS_DATA, values)
        data_vars[PRIORS_DATA] = values

    return BuiltModel(
        model=model,
        design=design,
        family=family,
        response_name=response_name,
        priors=priors,
        params=info,
        parameterization=choices,
        structure_key=_structure_key(design, family, priors, choices, crossproducts),
        data_vars=data_vars,
        likelihood="rows" if crossproducts is None else "cross-products",
    )


def smooth_dim(sm) -> str:
    """The dimension of a smooth's penalized coefficients: ``s(x)_dim`` (nutpie's trace splits
    dimension names at commas, so ``s(x, k=5)`` gets ``s(x; k=5)_dim``)."""
    return f"{sm.label}_dim".replace(",", ";")


def _build_body(pm, pt, design, family, priors, choices, info, response_name, data, rows_only=False) -> list[str] | None:
    """The model graph (called inside the pm.Model context of :func:`build_model`); returns
    the shape of a likelihood from cross-products (see :func:`_likelihood`), or None."""

    # group-level SDs first: the intercept's prior depends on them when group terms are
    # sampled as zero-sum offsets (see _intercept_rv)
    sds = {g.term.label: [_dist(pm, n, priors[n]) for n in g.sd_names] for g in design.groups}
    zerosum = [g for g in design.groups if choices[g.term.label].sums_to_zero]

    # population level: one variable per term, stacked in design order, sampled on the
    # centered (and, where it applies, QR-rotated) design when there is an intercept
    eta = 0.0
    beta = beta_c = None  # user-scale and sampled (centered-intercept) coefficients
    # the linear predictor's pieces, for a likelihood from cross-products (hlm_cli.model.suffstat)
    pieces = None if rows_only else _suffstat_pieces(design, family)
    if pieces is not None:
        model_data = data

        def data(name: str, value, dims=None):
            """Row-level arrays are not in that likelihood's graph: constants, not model data
            (a compiled model is rebound with new data by the names it uses)."""
            if not name.startswith("_ss_") and np.ndim(value) >= 1 and np.shape(value)[0] == design.n:
                return pt.as_tensor_variable(np.asarray(value))
            return model_data(name, value, dims=dims)
    if design.X.shape[1]:
        beta, beta_c, eta = _population(pm, pt, design, priors, zerosum, sds, info, data)
        if pieces is not None:
            pieces[0].coef = beta_c
    if design.offset is not None:
        eta = eta + data("_offset", design.offset)

    located: dict[str, object] = {}  # each term's level means: effect + what it is centered on
    by_label = {g.term.label: (i, g) for i, g in enumerate(design.groups)}
    # parents (factors others are nested in) first, so children can be centered on them
    order = sorted(design.groups, key=lambda g: param.depth(choices, g.term.label))
    for g in order:
        i = by_label[g.term.label][0]
        idx = data(f"_idx{i}", g.index)
        ones = g.columns == ["Intercept"] and bool(np.all(g.Z == 1.0))
        Z = None if ones else data(f"_Z{i}", g.Z)
        choice = choices[g.term.label]
        mean = None
        if choice.on_mean:  # hierarchical centering: effects centered on the population coefficients
            # a group intercept alone is centered on the sampled (centered) intercept: both are
            # exact shifts, and this one keeps the likelihood in centered coordinates; a term
            # with slopes on the user-scale coefficients (its Z is not centered)
            src = beta_c if g.columns == ["Intercept"] else beta
            mean = pt.stack([src[design.x_labels.index(c)] for c in g.columns])
            if choice.between:  # and on the columns that vary between its levels, at each level's means
                cols = [design.x_labels.index(c) for c in choice.between]
                xm = data(f"_levelmeans{i}", param.level_means(design, g, choice.between))  # (levels, p)
                mean = (mean[0] + pt.dot(xm, beta_c[cols]))[:, None]  # (levels, 1)
        elif choice.parent is not None:  # nested: centered on the parent level's mean
            parent = by_label[choice.parent][1]
            pidx = param.parent_index(g, parent)
            mean = located[choice.parent][:, 0][pidx][:, None]  # (levels, 1)
        if g.cov and len(g.columns) > 1:  # ar1(), cs(): never centered on anything (choices above)
            b = _structured_term(pm, pt, g, sds[g.term.label], priors, info, data)
        else:
            b = _group_term(pm, pt, g, sds[g.term.label], priors, choice, info, mean)  # (levels, K)
        located[g.term.label] = b if mean is None else b + (mean[None, :] if mean.ndim == 1 else mean)
        # a plain group intercept is a 1-D gather (its gradient a 1-D scatter-add): several
        # times cheaper per gradient than the general (rows, K) product on large data
        eta = eta + (b[:, 0][idx] if Z is None else (Z * b[idx]).sum(axis=1))
        if pieces is not None:
            pieces[(1 if design.X.shape[1] else 0) + i].coef = b

    for i, sm in enumerate(design.smooths):  # s(): penalized part, non-centered as in brms
        sd = _dist(pm, sm.sd_name, priors[sm.sd_name])
        z = pm.Normal(f"_z({sm.label})", 0.0, 1.0, dims=smooth_dim(sm))
        b = pm.Deterministic(sm.label, sd * z, dims=smooth_dim(sm))
        eta = eta + pt.dot(data(f"_Zs{i}", sm.Z), b)
        info.group_sds[sm.label] = [sm.sd_name]
        if pieces is not None:
            pieces[(1 if design.X.shape[1] else 0) + len(design.groups) + i].coef = b

    eta = pt.as_tensor_variable(eta)
    if eta.ndim == 0:
        eta = pt.zeros(design.n) + eta
    y = data("_y", design.y, dims=OBS_DIM)
    return _likelihood(pm, pt, design, family, priors, eta, y, response_name, data, info, pieces=pieces)


def _suffstat_pieces(design: Design, family: Family):
    """The linear predictor's pieces (coefficients filled in while the graph is built) when
    the likelihood is computed from cross-products (:mod:`hlm_cli.model.suffstat`), else None."""
    from hlm_cli.model import suffstat

    if not suffstat.eligible(design, family):
        return None
    pieces = []
    if design.X.shape[1]:
        means = column_means(design.X, design.x_labels)
        X = design.X if means is None else design.X - means
        ones = next((j for j in range(X.shape[1]) if bool(np.all(X[:, j] == 1.0))), None)
        pieces.append(suffstat.Piece("dense", None, D=np.asarray(X, dtype=float), ones_column=ones))
    for g in design.groups:
        ones = g.columns == ["Intercept"] and bool(np.all(g.Z == 1.0))
        pieces.append(suffstat.Piece("gather", None, idx=np.asarray(g.index), Z=None if ones else np.asarray(g.Z, dtype=float),
                                     levels=len(g.levels)))
    for sm in design.smooths:
        pieces.append(suffstat.Piece("dense", None, D=np.asarray(sm.Z, dtype=float)))
    return pieces if suffstat.worth_it(design.n, pieces) else None



def qr_rotation(Xc: np.ndarray) -> np.ndarray | None:
    """Lower-triangular ``L`` (positive diagonal) with ``Xc = Qt @ L`` and ``Qt`` having
    orthogonal columns of norm sqrt(n - 1), or None when the columns are (nearly) collinear.

    ``theta = L @ b`` are the coefficients of the orthogonalized design (rstanarm's QR
    reparameterization, from the QR factorization of the column-reversed design so that the
    factor is lower triangular and can serve as a Cholesky factor)."""
    n, k = Xc.shape
    if k < 2 or n <= k:
        return None
    _, R = np.linalg.qr(Xc[:, ::-1])
    L = R[::-1, ::-1] / np.sqrt(n - 1)
    d = np.diag(L)
    if not np.all(np.isfinite(L)) or np.min(np.abs(d)) <= 1e-10 * np.max(np.abs(d)):
        return None
    return np.sign(d)[:, None] * L


def _qr_plan(design: Design, priors: dict[str, Prior]) -> np.ndarray | None:
    """The QR factor of the centered slope columns, when the population level is sampled
    rotated: an intercept, at least two other columns, Normal priors on all of them (the
    rotated coefficients then have an exact MvNormal prior), and no collinearity."""
    means = column_means(design.X, design.x_labels)
    if means is None:
        return None
    cols = [j for j, lab in enumerate(design.x_labels) if lab != "Intercept"]
    if any(priors[design.x_labels[j]].dist != "Normal" for j in cols):
        return None
    return qr_rotation(design.X[:, cols] - means[cols])


def _population(pm, pt, design: Design, priors, zerosum, sds, info: ParamInfo, data):
    """Population-level coefficients; returns (user-scale beta, sampled beta_c, eta).

    With an intercept the design is centered (module docstring): ``eta = Xc @ beta_c`` where
    ``beta_c`` holds the centered intercept ``_Intercept_c`` in the intercept's position.
    When :func:`_qr_plan` applies, the slopes ``b`` are sampled as ``theta = L b`` (see
    :func:`qr_rotation`) with the prior implied by theirs, ``theta ~ MvNormal(L mu, L
    diag(sigma))``: the same model in rotated coordinates, in which the posterior of the
    slopes is close to uncorrelated even when columns are not (``recipe[B]`` and
    ``recipe[B]:temp``, or ``log(revenues)`` and ``log(grants)``), where a diagonal mass
    matrix otherwise mixes slowly. Each term is then a deterministic of ``theta`` under its
    usual name and dims.
    """
    means = column_means(design.X, design.x_labels)
    X = data("_X", design.X if means is None else design.X - means)
    L = _qr_plan(design, priors)
    slopes = None
    if L is not None:
        labels = [lab for lab in design.x_labels if lab != "Intercept"]
        mu = _prior_arg(QR_SLOPES, "mu", np.array([priors[lab].kwargs["mu"] for lab in labels]))
        sd = _prior_arg(QR_SLOPES, "sigma", np.array([priors[lab].kwargs["sigma"] for lab in labels]))
        Lt = _prior_arg(QR_SLOPES, "L", L)  # data, like the means
        Linv = _prior_arg(QR_SLOPES, "Linv", np.linalg.inv(L))
        theta = pm.MvNormal(QR_SLOPES, mu=pt.dot(Lt, mu), chol=Lt * sd[None, :], shape=len(labels))
        slopes = pt.dot(Linv, theta)
        position = {lab: k for k, lab in enumerate(labels)}
    coefs = []
    for term, sl in design.fixed_slices.items():
        labels = design.x_labels[sl]
        scalar = len(labels) == 1 and labels[0] == term
        if term == "Intercept":
            name = "Intercept" if means is None else CENTERED_INTERCEPT
            coefs.append(pt.atleast_1d(_intercept_rv(pm, pt, priors["Intercept"], zerosum, sds, name=name)))
        elif slopes is not None:
            part = slopes[[position[lab] for lab in labels]]
            rv = pm.Deterministic(term, part[0] if scalar else part, dims=None if scalar else f"{term}_dim")
            coefs.append(pt.atleast_1d(rv))
        elif scalar:
            coefs.append(pt.atleast_1d(_dist(pm, term, priors[labels[0]])))
        else:
            pr = [priors[lab] for lab in labels]
            if len({p.dist for p in pr}) == 1:
                stacked = Prior(pr[0].dist, tuple((k, np.array([dict(p.args)[k] for p in pr])) for k, _ in pr[0].args))
                coefs.append(_dist(pm, term, stacked, dims=f"{term}_dim"))
            else:  # a user prior for one column of a factor: separate variables
                parts = [_dist(pm, lab, p) for lab, p in zip(labels, pr, strict=True)]
                coefs.append(pt.stack(parts))
                info.population.extend(labels)
                continue
        info.population.append(term)
    beta = beta_c = pt.concatenate(coefs)
    eta = pt.dot(X, beta_c)
    if means is not None:
        ic = design.x_labels.index("Intercept")
        xbar = _prior_arg("_xbar", "mean", means)  # data, in the _priors vector (means[ic] = 0)
        intercept = pm.Deterministic("Intercept", beta_c[ic] - pt.dot(xbar, beta_c))
        beta = pt.set_subtensor(beta_c[ic], intercept)
    return beta, beta_c, eta


def _intercept_rv(pm, pt, prior: Prior, zerosum, sds, name: str = "Intercept"):
    """The intercept; with zero-sum group terms its Normal prior is widened exactly.

    Sampling group intercepts as zero-sum offsets ``d`` (sum 0) with the intercept ``m``
    absorbing their mean is the standard model ``y = m' + b'`` with ``b' ~ iid N(0, tau)``
    reparameterized: ``m = m' + mean(b')``, ``d = b' - mean(b')``, where ``mean(b') ~
    N(0, tau^2 / L)`` is independent of ``d``. Marginally ``m ~ prior(m') * N(0, tau^2 / L)``,
    which for a Normal(mu0, s0) prior is Normal(mu0, sqrt(s0^2 + sum tau_k^2 / L_k)): with that
    prior the two models are the same, and :func:`hlm_cli.model.reparam.to_user_scale` draws
    ``mean(b')`` back to report lme4-scale values.
    """
    if not zerosum or prior.dist != "Normal":  # Flat: the convolution is flat too
        return _dist(pm, name, prior)
    kw = prior.kwargs
    extra = sum(sd**2 / len(g.levels) for g in zerosum for sd in sds[g.term.label][:1])
    mu, sigma = _prior_arg("Intercept", "mu", kw["mu"]), _prior_arg("Intercept", "sigma", kw["sigma"])
    return pm.Normal(name, mu=mu, sigma=pt.sqrt(sigma**2 + extra))


def group_shift(g: GroupDesign) -> np.ndarray:
    """(K,) means of a group term's columns, 0 for its intercept: the ``c`` of
    :func:`hlm_cli.model.parameterization.shifts` (``b' = A b``, ``A = I + e_0 c^T``)."""
    c = np.asarray(g.Z, dtype=float).mean(axis=0)
    c[0] = 0.0
    return c


def _group_term(pm, pt, g: GroupDesign, sds, priors, choice, info: ParamInfo, mean=None):
    """Group effects of one term as a (levels, K) tensor on lme4's scale.

    ``mean`` (K,) is given for hierarchical centering: the sampled group coefficients are
    centered on the population-level ones and the returned effects are their deviations.
    """
    kind = choice.kind
    names = g.effect_names
    K = len(names)
    dims = g.factor
    info.group_sds.setdefault(g.factor, []).extend(f"{n}_sigma" for n in names)
    info.group_effects.setdefault(g.factor, []).extend(names)
    L = len(g.levels)
    if K == 1 or not g.term.correlated:
        cols = []
        for j, (n, sd) in enumerate(zip(names, sds, strict=True)):
            if kind == "zerosum":
                b = pm.ZeroSumNormal(n, sigma=sd, dims=dims)
            elif kind == "centered" and mean is not None:
                m = mean[:, j] if mean.ndim == 2 else mean[j]  # per level (nested) or scalar
                theta = pm.Normal(f"_mean({n})", m, sd, dims=dims)
                b = pm.Deterministic(n, theta - m, dims=dims)
            elif kind == "centered":
                b = pm.Normal(n, 0.0, sd, dims=dims)
            else:
                if choice.zero_sum:
                    z = pm.ZeroSumNormal(f"{n}_offset", sigma=1.0, dims=dims)
                else:
                    z = pm.Normal(f"{n}_offset", 0.0, 1.0, dims=dims)
                b = pm.Deterministic(n, z * sd, dims=dims)
            cols.append(b)
        return pt.stack(cols, axis=1)
    # correlated: separate SDs, an LKJ correlation matrix, and a Cholesky factor
    eta = float(priors[f"cor({g.factor})"].kwargs["eta"])
    # pymc 6: LKJCorr is the lower Cholesky factor L of the correlation matrix R = L L^T
    L_corr = pm.LKJCorr(f"_cholcorr({g.factor})", n=K, eta=eta)
    corr = pt.dot(L_corr, L_corr.T)
    chol = pt.stack(sds)[:, None] * L_corr
    label = f"{g.factor}|{g.term.expr}"
    c = None
    if choice.shifted:  # sampled for the covariates centered at their means (param.shifts)
        c = _prior_arg(f"_shift({label})", "mean", group_shift(g))  # (K,), c[0] = 0: data
        achol = pt.set_subtensor(chol[0], chol[0] + pt.dot(c, chol))  # A @ chol
        chol = pt.linalg.cholesky(pt.dot(achol, achol.T))  # lower factor of A Sigma A^T
        mean = None if mean is None else pt.set_subtensor(mean[0], mean[0] + pt.dot(c, mean))
    if kind == "noncentered" and choice.intercept_centered:
        # the intercept coordinate centered, the slopes non-centered given it: b' = chol @ w
        # with w_0 = b'_0 / chol[0, 0] (b'_0 ~ N(m_0, chol[0, 0]) sampled) and w_rest ~ N(0, 1)
        m0 = 0.0 if mean is None else mean[0]
        t0 = pm.Normal(f"_b0({label})", m0, chol[0, 0], shape=(L,))
        z = pm.Normal(f"_z({label})", 0.0, 1.0, shape=(L, K - 1))
        b = pt.dot(pt.concatenate([((t0 - m0) / chol[0, 0])[:, None], z], axis=1), chol.T)
    elif kind == "noncentered":
        z = pm.Normal(f"_z({label})", 0.0, 1.0, shape=(L, K))
        b = pt.dot(z, chol.T)
    elif mean is not None:
        theta = pm.MvNormal(f"_mean({label})", mu=mean, chol=chol, shape=(L, K))
        b = theta - mean[None, :]
    else:
        b = pm.MvNormal(f"_b({label})", mu=pt.zeros(K), chol=chol, shape=(L, K))
    if c is not None:  # back to the user's covariates: b = A^{-1} b', b_0 = b'_0 - c . b'
        b = pt.set_subtensor(b[:, 0], b[:, 0] - pt.dot(b, c))
    for j, n in enumerate(names):
        pm.Deterministic(n, b[:, j], dims=dims)
    cors = []
    for a in range(K):
        for c in range(a + 1, K):
            cname = f"cor({g.columns[a]},{g.columns[c]}|{g.factor})"
            pm.Deterministic(cname, corr[a, c])
            cors.append(cname)
    info.correlations.setdefault(g.factor, []).extend(cors)
    return b


def _structured_term(pm, pt, g: GroupDesign, sds, priors, info: ParamInfo, data):
    """Effects of an ``ar1()`` or ``cs()`` term as a (levels, K) tensor, non-centered.

    ar1(time | id): column k is the effect at the k-th distinct time T_k. The lower Cholesky
    factor of the AR(1) correlation rho ** (|T_k - T_j| / unit) is written in closed form,
    ``C[k, j] = rho ** ((T_k - T_j) / unit) * s_j`` (j <= k) with ``s_0 = 1`` and
    ``s_j = sqrt(1 - rho ** (2 (T_j - T_{j-1}) / unit))``: the stationary recursion
    ``u_k = phi_k u_{k-1} + s_k e_k`` written as one matrix product, without a scan, for equal
    or unequal gaps. ``b = sigma * z @ C^T`` with ``z ~ N(0, 1)``.
    cs(terms | g): R = (1 - rho) I + rho J (one correlation shared by every pair), separate SDs
    per column (glmmTMB's heterogeneous cs), ``b = z @ (diag(sd) chol(R))^T``.
    """
    names = g.effect_names
    K = len(names)
    L = len(g.levels)
    label = g.term.label
    info.group_sds.setdefault(g.factor, []).extend(g.sd_names)
    info.group_effects.setdefault(g.factor, []).extend(names)
    info.correlations.setdefault(g.factor, []).append(g.rho_name)
    rho = _dist(pm, g.rho_name, priors[g.rho_name])
    if g.cov == "ar1":
        E = ar1_lags(g)
        gaps = np.concatenate([[1.0], np.diff(g.times) / g.unit])  # gaps[0] unused (s_0 = 1)
        if rho_lower(g) < 0:  # whole-number lags: pow() takes a negative rho to them exactly
            E = np.round(E)
            gaps = np.round(gaps)
        below = np.tril(np.ones((K, K), dtype=bool), -1)
        # exponents of 0 kept out of pow() (its gradient at rho = 0 is 0 * inf there)
        powers = pt.where(below, pt.power(rho, np.where(below, E, 1.0)), np.eye(K))
        s = pt.sqrt(pt.maximum(1.0 - pt.power(rho, 2.0 * gaps), 1e-12))
        s = pt.set_subtensor(s[0], 1.0)
        chol = sds[0] * powers * s[None, :]
    else:
        R = (1.0 - rho) * pt.eye(K) + rho * pt.ones((K, K))
        chol = pt.stack(sds)[:, None] * pt.linalg.cholesky(R)
    z = pm.Normal(f"_z({label})", 0.0, 1.0, shape=(L, K))
    b = pt.dot(z, chol.T)
    for j, n in enumerate(names):
        pm.Deterministic(n, b[:, j], dims=g.factor)
    return b


def _sigma_regression(pm, pt, design: Design, priors, data, info: ParamInfo):
    """Per-row residual SD: sigma = exp(X_sigma @ gamma), stored as ``sigma`` (dim __obs__).

    With an intercept, gamma is sampled on the centered design like the population level
    (``_sigma_Intercept_c``) and ``sigma_Intercept`` is reported on the user's scale."""
    sd = design.sigma
    means = column_means(sd.X, sd.labels)
    Xs = data("_Xsigma", sd.X if means is None else sd.X - means)
    coefs = []
    for var, labels in sd.names().items():
        pr = [priors[f"sigma_{lab}"] for lab in labels]
        if len(labels) == 1 and var == f"sigma_{labels[0]}":
            name = CENTERED_SIGMA_INTERCEPT if means is not None and labels[0] == "Intercept" else var
            coefs.append(pt.atleast_1d(_dist(pm, name, pr[0])))
        else:
            dim = f"{var}_dim"
            pm.modelcontext(None).add_coord(dim, [lab[len(var) - 6 :].strip("[]") or lab for lab in labels])
            stacked = Prior(pr[0].dist, tuple((k, np.array([dict(p.args)[k] for p in pr])) for k, _ in pr[0].args))
            coefs.append(_dist(pm, var, stacked, dims=dim))
        info.family.append(var)
    gamma = pt.concatenate(coefs)
    if means is not None:
        ic = list(sd.labels).index("Intercept")
        pm.Deterministic("sigma_Intercept", gamma[ic] - pt.dot(_prior_arg("_xbar_sigma", "mean", means), gamma))
    return pm.Deterministic("sigma", pt.exp(pt.dot(Xs, gamma)), dims=OBS_DIM)


def _cutpoints(pm, design: Design, family: Family, prior: Prior):
    """The K - 1 ordered thresholds of a cumulative model, ``Intercept`` with coords 1..K-1
    (summary rows ``Intercept[1]``, ... as brms prints them), started at the link of equal
    category probabilities."""
    from scipy.special import logit, ndtri

    K = len(design.response_levels)
    pm.modelcontext(None).add_coord("Intercept_dim", [str(k) for k in range(1, K)])
    q = np.arange(1, K) / K
    start = logit(q) if family.link == "logit" else ndtri(q)
    return _dist(pm, "Intercept", prior, dims="Intercept_dim",
                 transform=pm.distributions.transforms.ordered, initval=start)


def _dpar_regression(pm, pt, design: Design, priors, data, info: ParamInfo):
    """Per-row zi (or hu) = invlogit(X_zi @ gamma), stored as ``zi`` (dim __obs__); like
    :func:`_sigma_regression`, sampled on the centered design with ``zi_Intercept`` reported."""
    dp = design.dpar
    means = column_means(dp.X, dp.labels)
    Xd = data(f"_X{dp.prefix}", dp.X if means is None else dp.X - means)
    coefs = []
    for var, labels in dp.names().items():
        pr = [priors[f"{dp.prefix}_{lab}"] for lab in labels]
        if len(labels) == 1 and var == f"{dp.prefix}_{labels[0]}":
            name = f"_{dp.prefix}_Intercept_c" if means is not None and labels[0] == "Intercept" else var
            coefs.append(pt.atleast_1d(_dist(pm, name, pr[0])))
        else:
            dim = f"{var}_dim"
            pm.modelcontext(None).add_coord(dim, [lab[len(var) - len(dp.prefix) - 1 :].strip("[]") or lab for lab in labels])
            stacked = Prior(pr[0].dist, tuple((k, np.array([dict(p.args)[k] for p in pr])) for k, _ in pr[0].args))
            coefs.append(_dist(pm, var, stacked, dims=dim))
        info.family.append(var)
    gamma = pt.concatenate(coefs)
    if means is not None:
        ic = list(dp.labels).index("Intercept")
        pm.Deterministic(f"{dp.prefix}_Intercept", gamma[ic] - pt.dot(_prior_arg(f"_xbar_{dp.prefix}", "mean", means), gamma))
    return pm.Deterministic(dp.prefix, pm.math.invlogit(pt.dot(Xd, gamma)), dims=OBS_DIM)


def _likelihood(pm, pt, design: Design, family: Family, priors, eta, y, name, data, info: ParamInfo, pieces=None):
    aux = {}
    for a in family.aux:
        if a in priors:
            aux[a] = _cutpoints(pm, design, family, priors[a]) if family.ordinal else _dist(pm, a, priors[a])
            info.family.append(a)
    kw = {"observed": y, "dims": OBS_DIM}
    if design.sigma is not None:
        aux["sigma"] = _sigma_regression(pm, pt, design, priors, data, info)
    if design.dpar is not None:
        aux[design.dpar.prefix] = _dpar_regression(pm, pt, design, priors, data, info)
    if design.se is not None:
        se = data("_se", design.se)
        sigma = pt.sqrt(se**2 + aux["sigma"] ** 2) if "sigma" in aux else se
    else:
        sigma = aux.get("sigma")
    terms = design.terms
    if terms is not None and terms.precision_weights is not None and sigma is not None:
        # lme4's precision weights: Var(y_i) = sigma^2 / w_i (hlm_cli.model.censoring)
        sigma = sigma / pt.sqrt(data("_weights", terms.precision_weights))
    trials = None
    if family.trials and design.trials is not None:
        trials = data("_trials", design.trials.astype(np.int64))
    if design.autocor is not None:  # residual AR(1): each row given the one before it
        eta, sigma = _residual_ar(pm, pt, design.autocor, priors, eta, y, sigma, info, data)
    par = {**aux, "sigma": sigma, "trials": trials}
    if pieces is not None:  # gaussian on large data: the same density from cross-products
        from hlm_cli.model import suffstat

        y_eff = design.y if design.offset is None else design.y - design.offset
        stats = suffstat.statistics(pieces, y_eff)
        rss = suffstat.residual_ss(pt, pieces, stats, data)
        n = float(design.n)
        pm.Potential(SUFFSTAT_LOGLIK, -n * pt.log(sigma) - 0.5 * n * np.log(2.0 * np.pi) - rss / (2.0 * sigma**2))
        return sorted(stats["constant"])  # which blocks are one number: part of the graph's shape
    family.pymc(pm, pt, name, eta, par, **kw)
    if terms is not None:
        from hlm_cli.model import censoring

        b = censoring.bounds(terms, design.y, family.name)
        if b.active:  # censoring, truncation, log-likelihood weights: a correction to log f(y)
            pm.Potential("_response_terms", censoring.correction(pm, pt, family, eta, par, y, data, b).sum())
    return None


def _residual_ar(pm, pt, ar, priors, eta, y, sigma, info: ParamInfo, data):
    """Conditional mean and SD of each row given its group's previous row (docs/covariance.md).

    With e = y - eta and phi_i = rho ** lag_i: e_i | e_prev ~ N(phi_i e_prev, sigma^2 (1 -
    phi_i^2)), e_first ~ N(0, sigma^2). The product of these is the exact multivariate normal
    likelihood of each series with stationary (marginal) SD ``sigma`` and correlation
    rho ** |t_i - t_j| / unit; ``sigma_innovation = sigma sqrt(1 - rho^2)`` (brms's sigma of
    ar()) is stored too. Vectorised over rows: no scan.
    """
    rho = _dist(pm, ar.rho_name, priors[ar.rho_name])
    info.family.extend([ar.rho_name, "sigma_innovation"])
    pm.Deterministic("sigma_innovation", sigma * pt.sqrt(1.0 - rho**2))
    prev = data("_ar_prev", np.maximum(ar.prev, 0))
    has = data("_ar_has", (ar.prev >= 0).astype(float))
    # a group's first row: lag 1 inside pow() (a 0 exponent has a nan gradient at rho = 0),
    # then phi = 0; whole-number lags let pow() take a negative rho
    lag = data("_ar_lag", np.where(ar.prev >= 0, ar.lag, 1.0))
    phi = has * pt.power(rho, lag)
    mu = eta + phi * (y[prev] - eta[prev])
    return mu, sigma * pt.sqrt(1.0 - phi**2)
