"""The report pages as HTML: one self-contained string, no external resources.

:func:`render_html` lays out a fit's page (model, data, diagnostics, summary, figures) from
run.json, summary.csv's table and the :class:`~hlm_cli.outputs.report.plan.Figure` list;
:func:`render_batch` the batch page (one sortable row per run). Nothing here draws or reads
run.json or a table: :mod:`hlm_cli.outputs.report.page` does, and hands over what to show.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.diagnostics import BFMI_MIN, ESS_PER_CHAIN, IDENT_CORR, RHAT_MAX
from hlm_cli.outputs.report.plan import Figure

MAX_EFFECT_ROWS = 300  # group-level effect rows listed in the page (the CSV has them all)

CHECKS = {
    "rhat": f"R-hat compares the spread between chains with the spread within them (Vehtari et al. 2021); above {RHAT_MAX} the chains have not settled on the same distribution.",
    "ess_bulk": f"Bulk effective sample size: how many independent draws the estimate of the centre is worth; below {ESS_PER_CHAIN} per chain, means and intervals are noisy.",
    "ess_tail": "Tail effective sample size: the same for the 5% and 95% quantiles; when it is low the ends of the intervals are unreliable.",
    "divergences": "A divergent transition is a place where the sampler met curvature it could not follow (often the funnel between a group SD and its effects); the posterior there may be missed.",
    "treedepth": "NUTS stopped at its maximum number of steps before the trajectory turned: the sampler is slow, usually because parameters are strongly correlated.",
    "bfmi": f"E-BFMI measures how well the sampler moves between energy levels (Betancourt 2016); below {BFMI_MIN} the tails of the posterior are explored poorly.",
    "identifiability": "The data determine the sum of two parameters but not how it is split between them, so each one alone is uncertain although predictions are precise (seed 000's two crossed intercepts).",
}
SECTIONS = (
    ("population", "Population-level effects"),
    ("group_sd", "Group-level effects: standard deviations"),
    ("correlation", "Group-level effects: correlations"),
    ("family", "Family-specific parameters"),
)



CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;max-width:1100px;margin:0 auto;padding:1.2em 1.5em 4em;line-height:1.45}
h1{font-size:1.55em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin:1.3em 0 .4em}code,.mono{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:.92em}
.sub{color:#555;margin-top:0}nav{background:#f6f7f9;border:1px solid #e3e5e8;border-radius:6px;padding:.5em .9em;font-size:.92em}
nav a{margin-right:1em;color:#1f5fa8;text-decoration:none}nav a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.9em}th,td{padding:.25em .7em;text-align:right;border-bottom:1px solid #eee}
th{background:#f6f7f9;font-weight:600}td:first-child,th:first-child{text-align:left}td.l,th.l{text-align:left}
dl.kv{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em;margin:.4em 0}dl.kv dt{font-weight:600;color:#444}dl.kv dd{margin:0}
.bad{color:#b00020;font-weight:600}.ok{color:#1b7f3b;font-weight:600}
.finding{border-left:4px solid #e0a800;background:#fffaf0;padding:.5em .9em;margin:.6em 0;border-radius:0 4px 4px 0}
.finding.note{border-left-color:#5b8def;background:#f3f7ff}.finding p{margin:.25em 0}.why{color:#555;font-size:.92em}
figure{margin:1.2em 0 2em;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{text-align:left;font-size:.92em;color:#333;max-width:900px;margin:.4em auto 0}figcaption b{color:#111}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:0 1.2em}
.missing{color:#8a6d00;background:#fff8e1;padding:.4em .8em;border-radius:4px;font-size:.92em}
details summary{cursor:pointer;color:#1f5fa8;margin:.4em 0}footer{margin-top:3em;color:#666;font-size:.85em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return _e(v)
    if not np.isfinite(v):
        return "nan" if v != v else _e(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits, len(str(int(abs(v)))))}g}"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(path.stem)}" data-file="plots/{_e(path.name)}">'


def _figure_html(f: Figure) -> str:
    if f.path is None:
        return f'<figure id="fig-{_e(f.key)}"><p class="missing">{_e(f.title)}: not drawn ({_e(f.error or "")}).</p></figure>'
    return (f'<figure id="fig-{_e(f.key)}">{_img(f.path)}<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} '
            f'<span class="mono">(plots/{_e(f.path.name)})</span></figcaption></figure>')


def _bar(label: str) -> str:
    """``1 + Days|Subject`` -> ``1 + Days | Subject`` (and ``||`` alike), as lme4 prints terms."""
    bar = "||" if "||" in label else "|"
    return label.replace(bar, f" {bar} ", 1)


def _section_model(info: dict, built) -> str:
    fam = info.get("family", {})
    cfg = info.get("config", {})
    params = info.get("parameters", {})
    rows = [
        ("Formula (as written)", f"<code>{_e(info.get('formula', ''))}</code>"),
        ("Command", f"<code>{_e(info.get('command', ''))}</code>"),
        ("Family", f"{_e(fam.get('name', ''))} (link: {_e(fam.get('link', ''))})" + (f" &mdash; {_e(built.family.description)}" if built is not None else "")),
        ("Response", f"<code>{_e(info.get('response', ''))}</code>"),
        ("Population-level terms", ", ".join(f"<code>{_e(p)}</code>" for p in params.get("population", [])) or "none"),
    ]
    terms = info.get("parameterization", {})
    if terms:
        rows.append(("Group-level terms", "<br>".join(
            f"<code>({_e(_bar(k))})</code> sampled <b>{_e(v.get('kind', ''))}</b>"
            f" <span class='why'>({_e(v.get('reason', ''))})</span>" for k, v in terms.items())))
    if built is not None and built.design.se is not None:
        rows.append(("Known standard errors", f"<code>se({_e(built.design.formula.response.se)})</code>"))
    rt = info.get("response_terms") or {}
    if rt:  # cens(), trunc(), weights() (docs/response-terms.md)
        parts = []
        if "cens" in rt:
            counts = ", ".join(f"{v} {k}" for k, v in (rt["cens"].get("rows") or {}).items() if v)
            parts.append(f"censoring <code>{_e(rt['cens'].get('column'))}</code> ({_e(counts)}): {_e(rt['cens'].get('definition', ''))}")
        if "trunc" in rt:
            parts.append(f"truncated to [{_e(rt['trunc'].get('lb') or '-inf')}, {_e(rt['trunc'].get('ub') or 'inf')}]")
        if "weights" in rt:
            parts.append(f"{_e(rt['weights'].get('type'))} weights <code>{_e(rt['weights'].get('column'))}</code>: {_e(rt['weights'].get('definition', ''))}")
        rows.append(("Response terms", "<br>".join(parts)))
    sampler = info.get("sampler", {})
    if sampler:
        rows.append(("Sampler", f"{_e(sampler.get('sampler', ''))}: {_e(sampler.get('chains', ''))} chains &times; {_e(sampler.get('draws', ''))} draws after {_e(sampler.get('tune', ''))} warm-up; target_accept {_e(sampler.get('target_accept', ''))}; seed {_e(info.get('seed', cfg.get('sampler', {}).get('seed', '')))}"))
    kv = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    priors = info.get("priors", {})
    prow = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td class='l'><code>{_e(p.get('text', p.get('dist', '')))}</code></td><td class='l'>{_e(p.get('source', ''))}</td></tr>"
        for name, p in priors.items())
    ptable = (f"<h3>Priors actually used</h3><table><tr><th>parameter</th><th class='l'>prior</th><th class='l'>source</th></tr>{prow}</table>"
              if prow else "")
    return f'<h2 id="model">Model</h2><dl class="kv">{kv}</dl>{ptable}'


def _section_data(info: dict, frame: pd.DataFrame | None, built) -> str:
    d = info.get("data", {})
    dropped = d.get("rows_dropped", 0)
    by_col = d.get("dropped_by_column") or {}
    drop_txt = f"{_e(dropped)}" + (" (missing values: " + ", ".join(f"{_e(k)}: {_e(v)}" for k, v in by_col.items()) + ")" if by_col else "")
    rows = [
        ("File", f"<code>{_e(d.get('file', ''))}</code>"),
        ("sha256", f"<span class='mono'>{_e(str(d.get('sha256', ''))[:16])}&hellip;</span>"),
        ("Rows read / used / dropped", f"{_e(d.get('rows_read', ''))} / {_e(d.get('rows_used', ''))} / {drop_txt}"),
    ]
    if d.get("categorical"):
        rows.append(("Treated as factors", ", ".join(f"<code>{_e(c)}</code>" for c in d["categorical"])))
    kv = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    groups = d.get("groups", {})
    gtable = ""
    if groups:
        body = ""
        for factor, g in groups.items():
            sizes = ""
            if built is not None:
                gd = next((x for x in built.design.groups if x.factor == factor), None)
                if gd is not None and len(gd.levels) <= 60:
                    counts = gd.n_obs_per_level
                    sizes = "<details><summary>rows per level</summary>" + ", ".join(
                        f"{_e(lev)}&nbsp;({int(c)})" for lev, c in zip(gd.levels, counts, strict=True)) + "</details>"
            body += (f"<tr><td><code>{_e(factor)}</code></td><td>{_e(g.get('levels', ''))}</td><td>{_e(g.get('min_per_level', ''))}</td>"
                     f"<td>{_e(g.get('max_per_level', ''))}</td><td class='l'>{sizes}</td></tr>")
        gtable = ("<h3>Grouping factors</h3><table><tr><th>factor</th><th>levels</th><th>min rows/level</th><th>max rows/level</th>"
                  f"<th class='l'></th></tr>{body}</table>")
    else:
        gtable = "<p>No group-level terms: the model is a plain (single-level) regression.</p>"
    return f'<h2 id="data">Data</h2><dl class="kv">{kv}</dl>{gtable}'


def _section_diagnostics(info: dict, figs: list[Figure]) -> str:
    diag = info.get("diagnostics", {})
    findings = diag.get("findings", [])
    if not findings:
        body = (f"<p class='ok'>All checks passed</p><p class='why'>R-hat &le; {RHAT_MAX}, bulk and tail ESS &ge; {ESS_PER_CHAIN} per chain, no divergent "
                f"transitions, no tree-depth hits, E-BFMI &ge; {BFMI_MIN}, and no intercept/group-mean trade-off (|r| &lt; {IDENT_CORR}).</p>")
    else:
        items = []
        for f in findings:
            sev = f.get("severity", "warning")
            why = CHECKS.get(f.get("code", ""), "")
            items.append(
                f"<div class='finding {'note' if sev != 'warning' else ''}'><p><b>{_e(sev)} ({_e(f.get('code', ''))}):</b> {_e(f.get('message', ''))}</p>"
                f"<p><b>Remedy:</b> {_e(f.get('remedy', ''))}</p>" + (f"<p class='why'>What this check means: {_e(why)}</p>" if why else "") + "</div>")
        ok = diag.get("ok", False)
        head = "<p class='ok'>No failing checks (notes only)</p>" if ok else f"<p class='bad'>{sum(f.get('severity', 'warning') == 'warning' for f in findings)} check(s) failed</p>"
        body = head + "".join(items)
    extra = "".join(_figure_html(f) for f in figs if f.key in ("identifiability", "pairs"))
    return f'<h2 id="diagnostics">Diagnostics</h2>{body}{extra}'


def _summary_table(rows: pd.DataFrame, kind: str, chains: int) -> str:
    from hlm_cli.outputs.summary import CI_PROB, ci_names, ci_of

    prob = ci_of(rows) or CI_PROB  # the run's --ci
    c, w = ci_names(prob), f"{prob * 100:g}%"
    head = (f"<tr><th></th><th>Estimate</th><th>Est.Error</th><th>l-{w} HDI</th><th>u-{w} HDI</th><th>l-{w} ETI</th><th>u-{w} ETI</th>"
            "<th>R-hat</th><th>Bulk ESS</th><th>Tail ESS</th></tr>")
    body = []
    ess_min = ESS_PER_CHAIN * max(chains, 1)
    for name, r in rows.iterrows():
        label = name
        if kind == "group_sd" and not name.startswith("sds("):  # a smooth's sds(s(x)) as named
            label = f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"
        rhat_cls = " class='bad'" if float(r.get("r_hat", 0) or 0) > RHAT_MAX else ""
        eb_cls = " class='bad'" if float(r.get("ess_bulk", 1e9) or 0) < ess_min else ""
        et_cls = " class='bad'" if float(r.get("ess_tail", 1e9) or 0) < ess_min else ""
        body.append(
            f"<tr><td title='{_e(name)}'><code>{_e(label)}</code></td><td>{_fmt(r['mean'])}</td><td>{_fmt(r['sd'])}</td>"
            f"<td>{_fmt(r[c['hdi_lb']])}</td><td>{_fmt(r[c['hdi_ub']])}</td><td>{_fmt(r.get(c['eti_lb']))}</td><td>{_fmt(r.get(c['eti_ub']))}</td>"
            f"<td{rhat_cls}>{_fmt(r['r_hat'], 4)}</td><td{eb_cls}>{_fmt(round(float(r['ess_bulk'])), 6)}</td><td{et_cls}>{_fmt(round(float(r['ess_tail'])), 6)}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _section_summary(summary: pd.DataFrame, info: dict) -> str:
    chains = int(info.get("sampler", {}).get("chains", 4) or 4)
    parts = []
    for kind, heading in SECTIONS:
        rows = summary[summary["kind"] == kind]
        if len(rows):
            parts.append(f"<h3>{_e(heading)}</h3>{_summary_table(rows, kind, chains)}")
    eff = summary[summary["kind"] == "group_effect"]
    if len(eff):
        shown = eff.head(MAX_EFFECT_ROWS)
        more = f" (first {MAX_EFFECT_ROWS} of {len(eff)}; all are in summary.csv)" if len(eff) > MAX_EFFECT_ROWS else ""
        parts.append(f"<details><summary>Group-level effects, one row per level{_e(more)}</summary>{_summary_table(shown, 'group_effect', chains)}</details>")
    note = ("<p class='why'>Estimate: posterior mean; Est.Error: posterior SD; HDI: highest-density interval; ETI: equal-tailed "
            f"interval; red marks R-hat &gt; {RHAT_MAX} or ESS below {ESS_PER_CHAIN} per chain ({ESS_PER_CHAIN * chains}).</p>")
    return f'<h2 id="summary">Summary</h2>{note}{"".join(parts)}'


def _section_figures(figs: list[Figure]) -> str:
    groups = [
        ("Estimates", ["posteriors", "forest"]),
        ("Shrinkage", [f.key for f in figs if f.key.startswith("shrinkage_")]),
        ("Conditional effects", [f.key for f in figs if f.key.startswith("conditional")]),
        ("Fit to the data", ["pred_vs_obs", "ppc", "ppc_rootogram", "prior_ppc"]),
        ("Convergence", ["trace", "rank"]),
    ]
    by_key = {f.key: f for f in figs}
    out = ['<h2 id="figures">Figures</h2>']
    for title, keys in groups:
        items = [by_key[k] for k in keys if k in by_key]
        if not items:
            if title == "Conditional effects":
                out.append(f"<h3 id='fig-{_e(title.lower().replace(' ', '-'))}'>{_e(title)}</h3><p class='why'>No population-level predictors besides the intercept: nothing to condition on.</p>")
            continue
        inner = "".join(_figure_html(f) for f in items)
        wrap = f"<div class='grid'>{inner}</div>" if title in ("Conditional effects", "Shrinkage") and len(items) > 1 else inner
        out.append(f"<h3 id='fig-{_e(title.lower().replace(' ', '-'))}'>{_e(title)}</h3>{wrap}")
    return "".join(out)


def section_pooling(tables: list[tuple[str, pd.DataFrame, Path | None]]) -> str:
    """No/complete/partial pooling tables written by ``hlm pooling`` (seed 001's comparison):
    (factor, table, figure or None) per ``pooling_<factor>.csv``."""
    parts = []
    for factor, t, img in tables:
        cols = ["no_pooling", "complete_pooling", "partial_pooling"]
        rows = ""
        if "truth" in t:
            mse = {c: float(((t[c] - t["truth"]) ** 2).mean()) for c in cols}
            best = min(mse, key=mse.get)
            rows = "".join(f"<tr><td>{_e(c.replace('_', ' '))}</td><td>{v:.4g}</td></tr>" for c, v in mse.items())
            rows = (f"<table><tr><th>estimate</th><th>MSE against the truth</th></tr>{rows}</table>"
                    f"<p class='why'>Lowest error: {_e(best.replace('_', ' '))}. Partial pooling shrinks each level's own estimate towards the grand mean by how noisy it is (Efron &amp; Morris 1973).</p>")
        fig = f"<figure>{_img(img)}<figcaption>Each level's own mean (grey) moves to the model's partially pooled estimate (blue); the dashed line is complete pooling; crosses are the truth when known.</figcaption></figure>" if img is not None else ""
        parts.append(f"<h3>{_e(factor)}</h3>{rows}{fig}")
    return f'<h2 id="pooling">Pooling: no, complete and partial</h2>{"".join(parts)}' if parts else ""


def section_varpart(table: pd.DataFrame | None) -> str:
    """The variance partition (hlm_cli.outputs.varpart): each component's fraction with its
    94% equal-tailed interval and its variance, as ``hlm varpart RUN`` prints it."""
    if table is None or not len(table):
        return ""
    rows = "".join(
        f"<tr><td>{_e(r.component)}</td><td>{r.mean:.3f}</td><td>{r.lower:.3f} &ndash; {r.upper:.3f}</td>"
        f"<td>{r.variance:.4g}</td></tr>" for r in table.itertuples())
    return ('<h2 id="varpart">Variance partition</h2>'
            "<p class='why'>The share of the response's variance (on the latent, link scale) due to each grouping "
            "factor, the population-level terms (fixed) and the residual, computed per posterior draw "
            "(Nakagawa, Johnson &amp; Schielzeth 2017), so each share has an interval (94%, equal-tailed). "
            "<code>hlm varpart RUN</code> writes it to varpart.csv.</p>"
            f"<table><tr><th>component</th><th>fraction</th><th>interval</th><th>variance</th></tr>{rows}</table>")


def section_sensitivity(table: pd.DataFrame | None) -> str:
    """sensitivity.csv as a table, with what its two numbers and the diagnosis mean."""
    if table is None or not len(table):
        return ""
    rows = "".join(
        f"<tr><td>{_e(r.parameter)}</td><td>{_num(r.prior)}</td><td>{_num(r.likelihood)}</td>"
        f"<td class='{'bad' if isinstance(r.diagnosis, str) and r.diagnosis else 'ok'}'>"
        f"{_e(r.diagnosis) if isinstance(r.diagnosis, str) and r.diagnosis else 'fine'}</td></tr>"
        for r in table.itertuples())
    return ('<h2 id="sensitivity">Prior sensitivity</h2>'
            "<p class='why'>How far each parameter's posterior moves when the prior (or the likelihood) is raised "
            "to a power slightly above or below 1 (power-scaling, Kallioinen et al. 2024, computed from the draws by "
            "importance weighting, no refit). Above 0.05 counts as sensitive: a sensitive prior with an insensitive "
            "likelihood means the data say little about the parameter (strong prior / weak likelihood); both sensitive "
            "means they pull apart (prior-data conflict). <code>hlm sensitivity RUN</code> recomputes it.</p>"
            f"<table><tr><th>parameter</th><th>prior</th><th>likelihood</th><th>diagnosis</th></tr>{rows}</table>")


def section_sbc(state: dict | None, summary: pd.DataFrame | None, figure: Path | None = None) -> str:
    """The "Calibration (SBC)" section: the verdict of ``hlm sbc RUN`` (RUN/sbc/sbc.json and
    sbc_summary.csv), its per-quantity table and the ECDF-difference figure (embedded)."""
    if state is None or summary is None or not len(summary):
        return ""
    verdict = str(state.get("verdict", ""))
    cls = "ok" if verdict == "pass" else "bad"
    rows = "".join(
        f"<tr><td>{_e(r.parameter)}</td><td>{_e(r.n_sims)}</td><td>{_num(r.max_ecdf_diff)}</td><td>{_num(r.p_adjusted)}</td>"
        f"<td class='{'ok' if r.verdict == 'pass' else 'bad'}'>{_e(r.verdict)}</td></tr>"
        for r in summary.itertuples())
    mismatch = state.get("simulate_priors") or {}
    note = ("<p class='why'><b>The simulator used other priors than the fit</b> (--simulate-prior "
            + _e(", ".join(f"{k}={v}" for k, v in mismatch.items())) + "): a failure is expected.</p>") if mismatch else ""
    img = ""
    if figure is not None and Path(figure).is_file():
        data = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
        img = (f"<figure id='fig-sbc'><img src='data:image/png;base64,{data}' alt='SBC ECDF difference' data-file='sbc/{_e(Path(figure).name)}'>"
               "<figcaption><b>SBC ECDF difference.</b> ECDF(u) - u of each quantity's fractional ranks over the simulations, "
               "with the simultaneous band (grey): a calibrated quantity stays inside it. Below zero: the posterior sits too low; "
               "above: too high; above then below: too narrow. <span class='mono'>(sbc/sbc_ecdf.png)</span></figcaption></figure>")
    return ('<h2 id="sbc">Calibration (SBC)</h2>'
            f"<p>Simulation-based calibration on this run's design and priors: <span class='{cls}'><b>{_e(verdict)}</b></span>. "
            f"{_e(state.get('sims', ''))} simulations: {_e(state.get('ok', ''))} fitted, {_e(state.get('failed', ''))} failed, "
            f"{_e(state.get('divergent_sims', ''))} with divergent transitions (kept in the ranks).</p>"
            "<p class='why'>Parameters drawn from the prior, data simulated from them and refitted: when the model and sampler are "
            "right the true values rank uniformly among the posterior draws. A pass says hlm computes this model's posterior "
            "correctly on data like these; it does not say the model fits the data (see the posterior predictive checks). "
            f"The verdict is Bonferroni-corrected over the quantities (family-wise level {_e(state.get('alpha', 0.05))}). "
            "<code>hlm sbc RUN</code> writes RUN/sbc; docs/sbc.md explains it.</p>"
            f"{note}<table><tr><th>quantity</th><th>n_sims</th><th>max |ECDF - u|</th><th>p (adjusted)</th><th>verdict</th></tr>{rows}</table>"
            f"{img}")


def _num(v) -> str:
    try:
        return "" if pd.isna(v) else f"{float(v):.3f}"
    except (TypeError, ValueError):
        return _e(v)


def render_html(info: dict, summary: pd.DataFrame, figs: list[Figure], *, frame: pd.DataFrame | None = None, built=None, extra: str = "") -> str:
    """The report page as one string (no external resources)."""
    versions = info.get("versions", {})
    timings = info.get("timings", {})
    title = f"hlm report: {info.get('formula', '')}"
    nav = "".join(f"<a href='#{a}'>{t}</a>" for a, t in (("model", "Model"), ("data", "Data"), ("diagnostics", "Diagnostics"), ("summary", "Summary"), ("figures", "Figures")))
    status = "<span class='ok'>diagnostics passed</span>" if info.get("diagnostics", {}).get("ok", False) else "<span class='bad'>diagnostics flagged problems</span>"
    d = info.get("data", {})
    sub = (f"{_e(Path(str(d.get('file', ''))).name)}: {_e(d.get('rows_used', ''))} rows; {_e(info.get('family', {}).get('name', ''))} family; "
           f"{status}")
    foot_t = ", ".join(f"{_e(k)} {float(v):.1f} s" for k, v in timings.items() if isinstance(v, (int, float)))
    foot_v = ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items())
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><p class='sub'>{sub}</p><nav>{nav}</nav>"
        f"{_section_model(info, built)}{_section_data(info, frame, built)}{_section_diagnostics(info, figs)}"
        f"{_section_summary(summary, info)}{_section_figures(figs)}{extra}"
        f"<footer><p>Timings: {foot_t or 'n/a'}.</p><p>Versions: {foot_v or 'n/a'}.</p>"
        "<p>Written by hlm; this file is self-contained (figures embedded) and can be moved or mailed on its own.</p></footer>"
        "</body></html>\n"
    )



# --------------------------------------------------------------------------- batch

BATCH_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, i){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.getAttribute('data-dir') !== 'asc';
    table.querySelectorAll('th').forEach(function(h){ h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function(a, b){
      var x = a.cells[i].getAttribute('data-v') || a.cells[i].textContent;
      var y = b.cells[i].getAttribute('data-v') || b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""
BATCH_OK = ("ok",)  # batch_status.csv: ok, diagnostics-warning, failed, pending
BATCH_BAD = ("failed",)


def batch_estimates(summary: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Key estimates per run as text 'mean [hdi94_lb, hdi94_ub]', and the means (for sorting).

    Population-level effects, group-level SDs and family parameters; not the per-level group
    effects or correlations (those are in each run's own report).
    """
    s = summary
    if "kind" in s.columns:
        s = s[s["kind"].isin(["population", "group_sd", "family"])]
    else:
        s = s[~s["parameter"].astype(str).str.contains(r"\[", regex=True)]
    if s.empty:
        return pd.DataFrame(), pd.DataFrame()
    has_ci = {"hdi94_lb", "hdi94_ub"} <= set(s.columns)
    text = [(_fmt(r["mean"]) + (f" [{_fmt(r['hdi94_lb'])}, {_fmt(r['hdi94_ub'])}]" if has_ci else "")) for _, r in s.iterrows()]
    long = pd.DataFrame({"key": s[key].astype(str).to_numpy(), "parameter": s["parameter"].astype(str).to_numpy(),
                         "text": text, "mean": pd.to_numeric(s["mean"], errors="coerce").to_numpy()})
    order = list(dict.fromkeys(long["parameter"]))
    texts = long.pivot_table(index="key", columns="parameter", values="text", aggfunc="first").reindex(columns=order)
    means = long.pivot_table(index="key", columns="parameter", values="mean", aggfunc="first").reindex(columns=order)
    return texts, means




BATCH_CSS = (
    # readable at 1280 px: the table scrolls inside its own box (both ways) with the header row
    # and the input column kept in view; long names, findings and messages wrap
    "body{max-width:none}"
    " .tablewrap{overflow:auto;max-width:100%;max-height:85vh;border:1px solid #e3e5e8;border-radius:4px}"
    " .tablewrap table{margin:0}"
    " .tablewrap thead th{position:sticky;top:0;z-index:2;box-shadow:0 1px 0 #ddd}"
    " .tablewrap td:first-child{position:sticky;left:0;z-index:1;background:#fff;box-shadow:1px 0 0 #eee}"
    " .tablewrap thead th:first-child{left:0;z-index:3}"
    " th{cursor:pointer;vertical-align:bottom}td{white-space:nowrap;vertical-align:top}td.st{white-space:normal}"
    " th.est{white-space:normal;min-width:5em;max-width:10em}"
    " td.in{white-space:normal;min-width:8em;max-width:16em}"
    " td.wrap{white-space:normal;min-width:12em;max-width:26em;overflow-wrap:anywhere}"
    " .ci{display:block;color:#666;font-size:.85em}"
    " .models{font-size:.92em}.models code{white-space:normal;overflow-wrap:anywhere}"
    " th[data-dir=asc]::after{content:' \\25B2'} th[data-dir=desc]::after{content:' \\25BC'}"
)


def _shown_inputs(inputs: list[str]) -> tuple[list[str], str]:
    """Input paths without the directory they all share (``sample_data/batch/``), and that directory."""
    dirs = [os.path.dirname(x) for x in inputs if x]
    try:
        common = os.path.commonpath(dirs) if dirs and len(dirs) == len(inputs) else ""
    except ValueError:  # absolute and relative paths mixed
        common = ""
    if not common:
        return list(inputs), ""
    return [os.path.relpath(x, common) for x in inputs], common


def _breakable(name: str, after: str = "|:_") -> str:
    """Text that may wrap after the characters of ``after`` (``1|cell_line_sigma``,
    ``screen_04_long_name.csv``) and nowhere else."""
    return "".join(_e(ch) + ("<wbr>" if ch in after else "") for ch in name)


def render_batch(batch_dir: Path, status: pd.DataFrame, texts: pd.DataFrame, means: pd.DataFrame, key: str, report_name: str) -> str:
    """The batch page: one sortable row per run of ``status`` (batch_status.csv), linking each
    run's ``report_name`` where it exists, with the key estimates of :func:`batch_estimates`.

    Laid out for a 1280 px window: the table sits in a scroll box (``.tablewrap``) whose header
    row and input column stay in view; inputs are shown without their shared directory (the
    full path is the cell's tooltip); with several models their formulas are listed once above
    the table instead of in a column; an estimate is its mean with the interval below it."""
    show_model = "model" in status.columns and status["model"].nunique() > 1
    show_formula = "formula" in status.columns and status["formula"].nunique() > 1
    formula_column = show_formula and not show_model  # with models: listed once above the table
    est_cols = list(texts.columns)
    head = "".join(f"<th class='l'>{_e(c)}</th>" for c in ["input"] + (["model"] if show_model else [])
                   + (["formula"] if formula_column else []) + ["status", "report"])
    head += "".join(f"<th class='est' title='{_e(c)}'>{_breakable(c)}</th>" for c in est_cols)
    head += "<th class='l'>findings</th><th>time (s)</th><th class='l'>message</th>"
    inputs = [str(r.get("input", "")) for _, r in status.iterrows()]
    shown, shared = _shown_inputs(inputs)
    rows, counts = [], {}
    for (_, r), short in zip(status.iterrows(), shown, strict=True):
        st = str(r.get("status", ""))
        counts[st] = counts.get(st, 0) + 1
        run = _run_dir_of(batch_dir, r)
        link = "&ndash;"
        if run is not None and (run / report_name).exists():
            rel = Path(os.path.relpath(run / report_name, batch_dir)).as_posix()
            link = f"<a href='{_e(rel)}'>report</a>"
        if str(r.get("compare", "")):
            cmp = Path(str(r["compare"]))
            cmp_rel = cmp if not cmp.is_absolute() else Path(os.path.relpath(cmp, batch_dir))
            link += f" &middot; <a href='{_e(cmp_rel.as_posix())}'>compare</a>"
        cls = "ok" if st.lower() in BATCH_OK else "bad" if st.lower() in BATCH_BAD else ""
        cells = [f"<td class='l in' title='{_e(r['input'])}' data-v='{_e(short)}'>{_breakable(short, "_/-.")}</td>"]
        if show_model:
            cells.append(f"<td class='l' title='{_e(r.get('formula', ''))}'>{_e(r.get('model', ''))}</td>")
        if formula_column:
            cells.append(f"<td class='l wrap'><code>{_e(r.get('formula', ''))}</code></td>")
        cells += [f"<td class='l st {cls}' data-v='{_e(st)}'>{_breakable(st, '-')}</td>", f"<td class='l'>{link}</td>"]
        k = str(r.get(key, ""))
        for c in est_cols:
            txt = texts.at[k, c] if k in texts.index else None
            m = means.at[k, c] if k in means.index else None
            dv = f" data-v='{float(m)!r}'" if m is not None and pd.notna(m) else ""
            if isinstance(txt, str) and " [" in txt:
                mean, ci = txt.split(" [", 1)
                body = f"{_e(mean)}<span class='ci'>[{_e(ci)}</span>"
            else:
                body = _e(txt) if isinstance(txt, str) else ""
            cells.append(f"<td{dv}>{body}</td>")
        t = str(r.get("total_s", "") or "")
        msg = " ".join(x for x in (str(r.get("error", "") or ""), f"(hint: {r['hint']})" if str(r.get("hint", "") or "") else "") if x)
        findings = "<br>".join(_e(x.strip()) for x in str(r.get("findings", "") or "").split(";") if x.strip())
        cells += [f"<td class='l wrap'>{findings}</td>",
                  f"<td>{_fmt(t) if t else ''}</td>", f"<td class='l wrap'>{_e(msg)}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    tally = ", ".join(f"{n} {_e(k or 'unknown')}" for k, n in counts.items())
    models = ""
    if show_model and show_formula:
        pairs = status[["model", "formula"]].astype(str).drop_duplicates().itertuples(index=False)
        models = "<p class='models'>Models: " + "; ".join(f"<b>{_e(m)}</b> <code>{_e(f)}</code>" for m, f in pairs) + "</p>"
    common = f" Inputs are in <code>{_e(shared)}</code>." if shared else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>hlm batch report</title>"
        f"<style>{CSS} {BATCH_CSS}</style></head><body>"
        f"<h1>hlm batch report</h1><p class='sub'>{_e(batch_dir.name)}: {len(status)} run(s): {tally}. "
        "Click a column header to sort. Estimates are posterior means with 94% HDIs; each run's own report has the details."
        f"{common}</p>{models}"
        f"<div class='tablewrap'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f"<script>{BATCH_JS}</script></body></html>\n"
    )


def _run_dir_of(batch_dir: Path, row: pd.Series) -> Path | None:
    """The run directory of a status row: its ``run_dir`` (relative to the batch), else the input's stem."""
    rel = str(row.get("run_dir", "") or "")
    if rel:
        p = Path(rel)
        return p if p.is_absolute() else batch_dir / p
    stem = Path(str(row.get("input", ""))).stem
    return batch_dir / stem if stem and (batch_dir / stem).is_dir() else None


def section_shared_priors(path: Path) -> str:
    """hlm batch --share: the priors learned from pass 1 (OUT/shared_priors.json) as a table."""
    import json

    try:
        payload = json.loads(Path(path).read_text())
        rows = payload.get("table") or []
        used = payload.get("priors") or {}
    except (OSError, ValueError, AttributeError):
        return ""
    body = "".join(
        f"<tr><td class='l'>{_e(r.get('parameter', ''))}</td><td class='l'>{_e(r.get('kind', ''))}</td>"
        f"<td class='l'><code>{_e(used.get(r.get('parameter'), 'yours (--prior)'))}</code></td><td>{_e(r.get('n_inputs', ''))}</td></tr>"
        for r in rows)
    return ("<h2>Shared priors (--share)</h2><p class='sub'>Learned from every input's first-pass fit by the method of "
            f"moments ({_e(payload.get('inputs_fitted', ''))} inputs); every run below was refitted with them "
            "(docs/screens-share.md).</p><table><thead><tr><th class='l'>parameter</th><th class='l'>kind</th>"
            f"<th class='l'>prior</th><th>inputs</th></tr></thead><tbody>{body}</tbody></table>")
