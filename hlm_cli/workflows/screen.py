"""``hlm batch TABLE --by COLUMN``: one table, one fit per feature (gene), and the screen's tables.

The table is split by the feature column into one file per feature under
``OUT/.features/NAME.parquet`` (Parquet keeps each column's type, so a feature's levels read
back exactly as in the whole table). Those files are the batch's inputs: their sha256 is what
resume compares, so a feature whose rows did not change is not fitted again, and a feature
whose rows changed is. Feature names become run-directory names (:func:`safe_names`); the
original names are kept in ``OUT/.features/features.json`` and in every table.

Compile once per model structure: every feature gets the whole table's level set of each
grouping factor (``FitSpec.group_levels``), so that a gene measured in 6 of 8 cell lines has
the same model as one measured in all 8. A level without rows in a feature has no likelihood
term; its effect is drawn from its prior (``Normal(0, sd)``), which leaves the posterior of
every other parameter, population-level effects included, unchanged. Features still differ in
structure when their number of rows differs (missing values), or when the automatic
parameterization picks the centered form for some and the non-centered form for others: one
compile for each such structure, not per feature.

After each fit (in the worker) the feature's population-level draws are summarised
(:func:`feature_rows`: mean, sd, interval, P(direction), lfsr) together with its variance
fractions (:func:`hlm_cli.outputs.varpart.fractions`) into
``OUT/.hlm_batch/screen/NAME.json``; the main process assembles ``features.csv``,
``varpart.csv``, the selection, the volcano and violin figures and the features table of
``batch_report.html`` from those, recomputing any that are missing.

lfsr (Stephens 2017, Biostatistics 18:275): the local false sign rate of an effect b is
``min(P(b >= 0), P(b <= 0))`` under the posterior: the probability that the sign we would
report is wrong (or that b is 0). The mean lfsr of the selected features estimates the
proportion of them whose sign is wrong: the false sign rate of the selection.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlm_cli.errors import ConfigError, InputError
from hlm_cli.outputs import batch_out

FEATURES_DIR = ".features"
NAMES_FILE = "features.json"
ROWS_DIR = "screen"  # under OUT/.hlm_batch: one JSON per feature (its rows of the two tables)
FEATURES_FILE = "features.csv"
SELECTED_FILE = "features_selected.csv"
VARPART_FILE = "varpart.csv"
VOLCANO_FILE = "volcano.png"
VIOLIN_FILE = "varpart.png"
FEATURE_COLUMNS = ["feature", "term", "mean", "sd", "lower", "upper", "p_direction", "lfsr", "status", "selected",
                   "lfsr_ash", "mean_ash"]
VARPART_COLUMNS = ["feature", "component", "mean", "lower", "upper"]
_MAX_NAME = 80


# --------------------------------------------------------------------------
# splitting and names
# --------------------------------------------------------------------------


def safe_names(features: list[str]) -> list[str]:
    """A run-directory name per feature: letters, digits, ``.``, ``_`` and ``-`` only.

    Other characters become ``_``; a leading dot becomes ``_``; names are cut at 80
    characters. A name that then collides with another (also ignoring case, for
    case-insensitive file systems) gets ``-`` and 8 hex digits of the original name's SHA-1,
    so the same feature always gets the same directory, whatever else is in the table.
    """
    base = []
    for f in features:
        s = re.sub(r"[^A-Za-z0-9._-]", "_", str(f))[:_MAX_NAME] or "feature"
        if s.startswith("."):
            s = "_" + s[1:]
        base.append(s)
    lowered = [b.lower() for b in base]
    counts: dict[str, int] = {}
    for b in lowered:
        counts[b] = counts.get(b, 0) + 1
    return [f"{b}-{hashlib.sha1(str(f).encode()).hexdigest()[:8]}" if counts[low] > 1 else b
            for f, b, low in zip(features, base, lowered, strict=True)]


def split(frame: pd.DataFrame, by: str, source: str = "the table") -> list[tuple[str, pd.DataFrame]]:
    """``[(feature, rows), ...]`` in order of first appearance; rows keep every column.

    Raises
    ------
    InputError
        ``by`` is not a column (the hint names the closest one), or it has empty values.
    """
    if by not in frame.columns:
        from hlm_cli.errors import closest_match

        raise InputError(f"--by column {by!r} is not in {source}", hint=closest_match(by, [str(c) for c in frame.columns]))
    col = frame[by]
    if col.isna().any():
        raise InputError(f"--by column {by!r} has {int(col.isna().sum())} empty value(s) in {source}",
                         hint="give every row a feature name, or drop those rows")
    keys = col.astype(str)
    order = list(dict.fromkeys(keys))
    groups = frame.groupby(keys, sort=False)
    return [(name, groups.get_group(name)) for name in order]


def level_sets(frame: pd.DataFrame, formulas: list[str], by: str) -> dict[str, list[str]]:
    """The whole table's levels of every grouping factor of ``formulas`` (``"a:b"`` for an
    interaction), sorted as a single fit sorts them.

    Raises
    ------
    InputError
        ``by`` is one of the grouping factors (every feature would have one level).
    """
    from hlm_cli.formula import parse
    from hlm_cli.formula.design import level_labels

    out: dict[str, list[str]] = {}
    for text in formulas:
        formula = parse(text, [str(c) for c in frame.columns])
        for gt in formula.groups:
            if by in gt.factor:
                raise InputError(f"--by {by} is also a grouping factor of the formula ({gt.label})",
                                 hint=f"each feature has one {by}: drop (... | {by}) from the formula, or split by another column")
            if gt.cov == "ar1":
                continue
            rows = frame[list(gt.factor)].dropna()
            out[":".join(gt.factor)] = sorted(set(level_labels(rows, gt.factor)))
    return out


def write_features(out: Path, parts: list[tuple[str, pd.DataFrame]], names: list[str]) -> list[tuple[str, str]]:
    """Write each feature's rows to ``OUT/.features/NAME.parquet`` (rewritten only when the bytes
    change) and the name map; returns ``[(path, name), ...]`` for :class:`BatchSpec.named_inputs`."""
    from hlm_cli.outputs.rundir import write_atomic

    folder = Path(out) / FEATURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    inputs = []
    for (_, rows), name in zip(parts, names, strict=True):
        path = folder / f"{name}.parquet"
        blob = _parquet_bytes(rows.reset_index(drop=True))
        if not path.exists() or path.read_bytes() != blob:
            write_atomic(path, lambda fh, b=blob: fh.write(b), binary=True)
        inputs.append((str(path), name))
    mapping = {name: feature for (feature, _), name in zip(parts, names, strict=True)}
    batch_out.write_json_atomic(folder / NAMES_FILE, mapping)
    return inputs


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is a dependency of hlm
        raise ConfigError("hlm batch --by needs pyarrow", hint="pip install pyarrow") from None
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def feature_names(out: Path) -> dict[str, str]:
    """Run-directory name -> original feature name (``OUT/.features/features.json``)."""
    return batch_out.read_json(Path(out) / FEATURES_DIR / NAMES_FILE) or {}


# --------------------------------------------------------------------------
# per feature: lfsr and friends from the draws
# --------------------------------------------------------------------------


def sign_stats(draws: np.ndarray) -> tuple[float, float]:
    """``(p_direction, lfsr)`` of one effect's draws.

    ``p_direction``: the posterior probability that the effect has the sign of its median
    (0.5 when the median is 0); ``lfsr``: ``min(P(b >= 0), P(b <= 0))`` (Stephens 2017).
    """
    b = np.asarray(draws, dtype=float).ravel()
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(b))
    p_direction = 0.5 if med == 0 else float(np.mean(np.sign(b) == np.sign(med)))
    lfsr = float(min(np.mean(b >= 0), np.mean(b <= 0)))
    return p_direction, lfsr


def feature_rows(run_dir: Path, ci: float = 0.94, *, posterior=None, info: dict | None = None) -> list[dict]:
    """One row per population-level term of a committed run directory:
    ``term, mean, sd, lower, upper`` (equal-tailed ``ci`` interval), ``p_direction, lfsr``.
    ``posterior``: the run's posterior group already in memory (else read from posterior.nc);
    ``info``: its run.json already read."""
    import xarray as xr

    from hlm_cli.workflows.hypothesis import label_draws

    run_dir = Path(run_dir)
    if info is None:
        info = json.loads((run_dir / "run.json").read_text())
    population = list((info.get("parameters") or {}).get("population") or [])
    if posterior is not None:
        draws = label_draws(posterior, population)
    else:
        with xr.open_dataset(run_dir / "posterior.nc", group="posterior") as post:
            draws = label_draws(post[[v for v in population if v in post]].load(), population)
    lo, hi = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    for term, b in draws.items():
        b = np.asarray(b, dtype=float)
        pd_, lfsr = sign_stats(b)
        rows.append({"term": term, "mean": float(np.mean(b)), "sd": float(np.std(b, ddof=1)) if b.size > 1 else 0.0,
                     "lower": float(np.quantile(b, lo)), "upper": float(np.quantile(b, hi)),
                     "p_direction": pd_, "lfsr": lfsr})
    return rows


def _rows_path(out: Path, run_dir: str) -> Path:
    from urllib.parse import quote

    return Path(out) / batch_out.STATE_DIR / ROWS_DIR / (quote(run_dir, safe="") + ".json")


def _ci_of(info: dict) -> float:
    """The interval width a run was fitted with (its run.json)."""
    return float((info.get("config") or {}).get("ci") or 0.94)


def summarise_feature(run_dir: Path, record: dict | None = None, result=None) -> dict:
    """Compute and save one feature's rows (features.csv and varpart.csv); the batch's after-fit
    hook (``result``: the fit's FitResult, whose posterior is still in memory)."""
    run_dir = Path(run_dir)
    info = batch_out.read_json(run_dir / "run.json") or {}
    ci = _ci_of(info)
    tree = getattr(result, "tree", None)
    rows = feature_rows(run_dir, ci, posterior=tree["posterior"].to_dataset() if tree is not None else None,
                        info=info or None)
    try:
        if tree is not None and getattr(result, "built", None) is not None:  # the fit still in memory
            from hlm_cli.outputs.varpart import fractions

            vp = fractions(tree, result.built, ci)
        else:
            from hlm_cli.workflows.varpart import fractions_from_run

            vp = fractions_from_run(run_dir, ci=ci)
        varpart = vp[["component", "mean", "lower", "upper"]].to_dict("records")
    except Exception as err:  # noqa: BLE001 - a missing fraction never loses the feature's estimates
        varpart, why = [], f"{type(err).__name__}: {err}"
    else:
        why = ""
    out = run_dir.parent
    blob = {"sha256": (info.get("data") or {}).get("sha256"), "fingerprint": batch_out.fingerprint(info.get("config") or {}),
            "ci": ci, "features": rows, "varpart": varpart, "varpart_error": why}
    batch_out.write_json_atomic(_rows_path(out, run_dir.name), blob)
    return blob


def _load_rows(out: Path, run_dir: str, sha: str, fp: str) -> dict | None:
    blob = batch_out.read_json(_rows_path(out, run_dir))
    if blob is None or blob.get("sha256") != sha or blob.get("fingerprint") != fp:
        return None
    return blob


# --------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------


def ash(betahat: np.ndarray, se: np.ndarray, *, null_weight: float = 10.0, iters: int = 500) -> dict[str, np.ndarray]:
    """Adaptive shrinkage (Stephens 2017, ``ashr``'s normal mixture): learn the distribution of
    the effects across features, g = pi_0 delta_0 + sum_k pi_k N(0, sigma_k^2), from each
    feature's estimate and standard error, then each feature's posterior under g.

    The grid of sigma_k is ashr's (from min(se)/10 to 2 sqrt(max(betahat^2 - se^2)), factor
    sqrt(2)); the mixture weights are fitted by EM with ashr's default penalty on pi_0
    (``null_weight`` = 10, which errs towards null). Returns ``lfsr``, ``mean`` (posterior
    mean) and ``pi0`` (the estimated share of null effects, repeated).
    """
    from scipy.stats import norm

    b = np.asarray(betahat, dtype=float)
    s = np.maximum(np.asarray(se, dtype=float), 1e-12)
    ok = np.isfinite(b) & np.isfinite(s)
    out = {"lfsr": np.full(b.shape, np.nan), "mean": np.full(b.shape, np.nan), "pi0": np.full(b.shape, np.nan)}
    if ok.sum() < 3:
        return out
    b, s = b[ok], s[ok]
    lo = float(np.min(s)) / 10
    hi = 2 * float(np.sqrt(max(np.max(b**2 - s**2), lo**2 * 4)))
    grid = lo * np.sqrt(2) ** np.arange(int(np.ceil(np.log(hi / lo) / np.log(np.sqrt(2)))) + 1)
    sig = np.concatenate([[0.0], grid])
    lik = norm.pdf(b[:, None], 0.0, np.sqrt(s[:, None] ** 2 + sig[None, :] ** 2))  # (n, K)
    pi = np.full(len(sig), 1.0 / len(sig))
    prior = np.ones(len(sig))
    prior[0] = null_weight
    for _ in range(iters):
        w = lik * pi
        w /= w.sum(axis=1, keepdims=True)
        new = w.sum(axis=0) + prior - 1
        new = new / new.sum()
        if np.max(np.abs(new - pi)) < 1e-8:
            pi = new
            break
        pi = new
    w = lik * pi
    w /= w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shrink = sig[None, 1:] ** 2 / (sig[None, 1:] ** 2 + s[:, None] ** 2)
        mu = b[:, None] * shrink
        sd = np.sqrt(shrink) * s[:, None]
        p_neg = (w[:, 1:] * norm.cdf(-mu / sd)).sum(axis=1)
    p_zero = w[:, 0]
    p_pos = 1 - p_neg - p_zero
    out["lfsr"][ok] = np.minimum(p_neg + p_zero, p_pos + p_zero).clip(0, 1)
    out["mean"][ok] = (w[:, 1:] * mu).sum(axis=1)
    out["pi0"][ok] = pi[0]
    return out


def add_ash(table: pd.DataFrame) -> pd.DataFrame:
    """Columns ``lfsr_ash`` and ``mean_ash``: :func:`ash` per term over the features (the
    intercept is left out: its features do not share a distribution centred at 0)."""
    table = table.copy()
    table["lfsr_ash"] = np.nan
    table["mean_ash"] = np.nan
    for term, idx in table.groupby("term", sort=False).groups.items():
        if term in ("", "Intercept"):
            continue
        sub = table.loc[idx]
        res = ash(sub["mean"].to_numpy(dtype=float), sub["sd"].to_numpy(dtype=float))
        table.loc[idx, "lfsr_ash"] = res["lfsr"]
        table.loc[idx, "mean_ash"] = res["mean"]
    return table


def select(table: pd.DataFrame, lfsr: float | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mark ``selected`` (lfsr < threshold) and estimate each term's false sign rate among the
    selected (their mean lfsr). The lfsr used is ``lfsr_ash`` where the table has it (the
    features' effects shrunk by their distribution across features, :func:`ash`), else the
    per-feature ``lfsr``. Returns (table, per-term selection summary:
    ``term, threshold, lfsr_column, selected, features, est_false_sign_rate``)."""
    table = table.copy()
    cols = ["term", "threshold", "lfsr_column", "selected", "features", "est_false_sign_rate"]
    if lfsr is None:
        table["selected"] = pd.NA
        return table, pd.DataFrame(columns=cols)
    table["selected"] = False
    rows = []
    for term, sub in table.groupby("term", sort=False):
        col = "lfsr_ash" if "lfsr_ash" in sub and sub["lfsr_ash"].notna().any() else "lfsr"
        chosen = sub[sub[col] < lfsr]
        table.loc[chosen.index, "selected"] = True
        rows.append({"term": term, "threshold": lfsr, "lfsr_column": col, "selected": len(chosen), "features": len(sub),
                     "est_false_sign_rate": float(chosen[col].mean()) if len(chosen) else float("nan")})
    return table, pd.DataFrame(rows, columns=cols)


def assemble(out: Path, entries: list, status: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """features.csv's and varpart.csv's rows (without ``selected``) from the saved per-feature
    rows, recomputing those that are missing or stale; failed features get one row with
    their status and empty numbers."""
    out = Path(out)
    names = feature_names(out)
    by_dir = status.set_index("run_dir")["status"].to_dict() if len(status) else {}
    feats, parts = [], []
    for e in entries:
        st = str(by_dir.get(e.run_dir, "failed"))
        feature = names.get(e.run_dir.split("/")[0], e.run_dir)
        blob = None
        if st in ("ok", "diagnostics-warning"):
            blob = _load_rows(out, e.run_dir, e.sha256, e.fingerprint)
            if blob is None:
                try:
                    blob = summarise_feature(out / e.run_dir)
                except Exception:  # noqa: BLE001 - an unreadable run is reported as such
                    blob = None
        if blob is None or not blob.get("features"):
            feats.append({"feature": feature, "term": "", "status": st})
            continue
        for r in blob["features"]:
            feats.append({"feature": feature, **r, "status": st})
        for r in blob.get("varpart") or []:
            parts.append({"feature": feature, **r})
    ft = pd.DataFrame(feats, columns=[c for c in FEATURE_COLUMNS if c not in ("selected", "lfsr_ash", "mean_ash")])
    vp = pd.DataFrame(parts, columns=VARPART_COLUMNS)
    return ft, vp


def write_tables(out: Path, features: pd.DataFrame, varpart: pd.DataFrame, summary: pd.DataFrame,
                 lfsr: float | None) -> dict[str, Path]:
    """features.csv, varpart.csv and (with ``lfsr``) features_selected.csv, atomically."""
    from hlm_cli.outputs.rundir import write_atomic

    out = Path(out)
    paths = {"features": out / FEATURES_FILE, "varpart": out / VARPART_FILE}
    features = features.reindex(columns=FEATURE_COLUMNS)
    write_atomic(paths["features"], lambda fh: features.to_csv(fh, index=False))
    write_atomic(paths["varpart"], lambda fh: varpart[VARPART_COLUMNS].to_csv(fh, index=False))
    sel_path = out / SELECTED_FILE
    if lfsr is not None:
        chosen = features[features["selected"] == True].merge(  # noqa: E712 - a pandas mask
            summary[["term", "lfsr_column", "est_false_sign_rate"]], on="term", how="left")
        chosen = chosen.sort_values(["term", "lfsr", "feature"], kind="stable")
        write_atomic(sel_path, lambda fh: chosen.to_csv(fh, index=False))
        paths["selected"] = sel_path
    elif sel_path.exists():
        sel_path.unlink()  # from an earlier --lfsr run: it would no longer match features.csv
    return paths


# --------------------------------------------------------------------------
# figures and the features table of batch_report.html
# --------------------------------------------------------------------------


def plot_volcano(features: pd.DataFrame, path: Path, *, max_terms: int = 6) -> Path | None:
    """Effect mean against -log10(lfsr), one panel per population-level term (Intercept left
    out when other terms exist), selected features highlighted. None when nothing to draw."""
    df = features.dropna(subset=["mean", "lfsr"])
    terms = list(dict.fromkeys(df["term"]))
    if len(terms) > 1:
        terms = [t for t in terms if t != "Intercept"]
    terms = terms[:max_terms]
    if not terms:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(terms), figsize=(4.2 * len(terms), 3.8), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=False):
        sub = df[df["term"] == term]
        # an lfsr of 0 means no draw had the other sign: plot it at half a draw's resolution
        floor = max(1e-300, 0.5 / 4000)
        col = "lfsr_ash" if "lfsr_ash" in sub and sub["lfsr_ash"].notna().all() else "lfsr"
        y = -np.log10(np.maximum(sub[col].to_numpy(dtype=float), floor))
        sel = sub["selected"].fillna(False).astype(bool).to_numpy() if "selected" in sub else np.zeros(len(sub), bool)
        ax.scatter(sub["mean"][~sel], y[~sel], s=10, c="0.6", label="not selected")
        if sel.any():
            ax.scatter(sub["mean"][sel], y[sel], s=14, c="tab:red", label="selected")
        ax.axvline(0, c="0.8", lw=0.8)
        ax.set_xlabel(f"{term}: posterior mean")
        ax.set_ylabel(f"-log10({col})")
        ax.set_title(term, fontsize=10)
        if sel.any():
            ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


_TABLE_JS = """
<script>
(function(){
  var t=document.getElementById('features-table'); if(!t) return;
  var body=t.tBodies[0], rows=Array.prototype.slice.call(body.rows), f=document.getElementById('features-filter');
  var sel=document.getElementById('features-selected');
  function apply(){var q=(f.value||'').toLowerCase(), s=sel&&sel.checked;
    rows.forEach(function(r){var ok=r.textContent.toLowerCase().indexOf(q)>=0 && (!s || r.dataset.selected==='True');
      r.style.display=ok?'':'none';});}
  f.addEventListener('input',apply); if(sel) sel.addEventListener('change',apply);
  Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){th.style.cursor='pointer';
    th.addEventListener('click',function(){var asc=th.dataset.asc!=='1'; th.dataset.asc=asc?'1':'0';
      rows.sort(function(a,b){var x=a.cells[i].dataset.v, y=b.cells[i].dataset.v, nx=parseFloat(x), ny=parseFloat(y);
        var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y)); return asc?c:-c;});
      rows.forEach(function(r){body.appendChild(r);});});});
})();
</script>
"""


def features_section(features: pd.DataFrame, summary: pd.DataFrame, lfsr: float | None, *, max_rows: int = 20000) -> str:
    """HTML: the selection summary and a sortable (click a header), filterable table of
    features.csv, with plain JavaScript (no network)."""
    import html as h

    def fmt(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.4g}"
        return "" if v is None or v is pd.NA else str(v)

    parts = ['<section id="features"><h2>Features</h2>']
    if lfsr is not None and len(summary):
        parts.append("<p>Selected at lfsr &lt; " + h.escape(f"{lfsr:g}") + ": " + "; ".join(
            h.escape(f"{r.term}: {r.selected} of {r.features} (estimated false sign rate {fmt(r.est_false_sign_rate)})")
            for r in summary.itertuples()) + "</p>")
    parts.append('<p><input id="features-filter" placeholder="filter (feature, term, status...)" size="40"> '
                 + ('<label><input type="checkbox" id="features-selected"> selected only</label>' if lfsr is not None else "")
                 + " Click a column header to sort.</p>")
    shown = features.reindex(columns=FEATURE_COLUMNS).head(max_rows)
    if len(features) > max_rows:
        parts.append(f"<p>The first {max_rows} of {len(features)} rows; all are in features.csv.</p>")
    parts.append('<table id="features-table"><thead><tr>' + "".join(f"<th>{h.escape(c)}</th>" for c in FEATURE_COLUMNS)
                 + "</tr></thead><tbody>")
    for r in shown[FEATURE_COLUMNS].itertuples(index=False):
        cells = "".join(f'<td data-v="{h.escape(fmt(v))}">{h.escape(fmt(v))}</td>' for v in r)
        parts.append(f'<tr data-selected="{h.escape(fmt(r.selected))}">{cells}</tr>')
    parts.append("</tbody></table>")
    for name, alt in ((VOLCANO_FILE, "volcano plot"), (VIOLIN_FILE, "variance fractions")):
        parts.append(f'<p><img src="{name}" alt="{alt}" style="max-width:100%"></p>')
    parts.append("</section>" + _TABLE_JS)
    return "\n".join(parts)


def add_to_report(out: Path, section: str) -> None:
    """Insert ``section`` into OUT/batch_report.html (before ``</body>``); a missing page is
    left missing (the batch's tables are the record)."""
    from hlm_cli.outputs.rundir import write_atomic

    page = Path(out) / "batch_report.html"
    try:
        text = page.read_text()
    except OSError:
        return
    text = re.sub(r'<section id="features">.*?</section>\s*<script>.*?</script>\s*', "", text, flags=re.S)
    text = text.replace("</body>", section + "\n</body>", 1) if "</body>" in text else text + section
    write_atomic(page, lambda fh: fh.write(text))


# --------------------------------------------------------------------------
# the workflow
# --------------------------------------------------------------------------


def check_screen_options(*, by: str | None, lfsr: float | None, full_features: bool = False, inputs: list[str] | None,
                         manifest: Path | None) -> None:
    """Refuse ``hlm batch --by`` options that cannot work, before any input is read."""
    if by is None:
        for flag, given in (("--lfsr", lfsr is not None), ("--full-features", full_features)):
            if given:
                raise ConfigError(f"{flag} works with --by only", hint="add --by COLUMN to split one table into features")
        return
    if not by.strip():
        raise ConfigError("--by is empty", hint="name the feature column, e.g. --by gene")
    n = len(inputs or []) + (manifest is not None)
    if n != 1 or manifest is not None:
        raise ConfigError(f"--by splits one table, but {n} inputs were given" if manifest is None
                          else "--by splits one table and takes no --manifest",
                          hint="give one table, e.g. hlm batch screen.csv --by gene ..., or leave out --by to fit each file")
    if lfsr is not None and not 0 < lfsr < 1:
        raise ConfigError(f"--lfsr must be between 0 and 1 (got {lfsr:g})", hint="e.g. --lfsr 0.05")


def screen_lines(result: ScreenResult) -> list[str]:
    """The closing lines of ``hlm batch --by``: the selection per term and the files."""
    lines = []
    if result.lfsr is not None:
        for r in result.selection.itertuples():
            rate = "" if r.selected == 0 else f"; estimated false sign rate among them {r.est_false_sign_rate:.3g}"
            lines.append(f"{r.term}: {r.selected} of {r.features} features with {r.lfsr_column} < {r.threshold:g}{rate}")
    lines.append("Wrote " + ", ".join(str(p) for p in result.paths.values()))
    return lines


@dataclass
class ScreenResult:
    """What ``hlm batch --by`` produced: the batch's result and the screen's tables."""

    batch: object  # hlm_cli.workflows.batch.BatchResult
    features: pd.DataFrame
    varpart: pd.DataFrame
    selection: pd.DataFrame  # per term: threshold, selected, features, est_false_sign_rate
    paths: dict[str, Path] = field(default_factory=dict)
    lfsr: float | None = None
    split_s: float = 0.0
    tables_s: float = 0.0
    shared: object = None  # hlm_cli.workflows.share.SharedResult with --share

    @property
    def exit_code(self) -> int:
        return self.batch.exit_code


def run_screen(spec, by: str, *, lfsr: float | None = None, full: bool = False, on_progress=None,
               table=None, on_stage=None) -> ScreenResult:
    """Split ``spec.inputs[0]`` by ``by`` and fit every feature with :func:`run_batch`.

    Parameters
    ----------
    spec : hlm_cli.workflows.batch.BatchSpec
        Exactly one input (the table), no manifest.
    by : str
        The feature column.
    lfsr : float, optional
        Select the features whose lfsr is below this (per term), and estimate the false sign
        rate among them.
    full : bool
        Write each feature's full run directory (figures, report.html, log-likelihood,
        sensitivity.csv). By default the runs are lean (``FitSpec.lean``, no figures): those
        outputs take most of a small feature's time.
    table : hlm_cli.data.Table, optional
        The already-read table (the Python API passes a DataFrame this way).
    on_stage : callable, optional
        With ``spec.share``: receives the stages of :func:`hlm_cli.workflows.share.run_shared_batch`.

    Raises
    ------
    HlmError
        Several inputs, a manifest, a missing --by column, --by a grouping factor, a bad --lfsr.
    """
    import dataclasses

    from hlm_cli import data as data_mod
    from hlm_cli.workflows.batch import run_batch

    if lfsr is not None and not 0 < lfsr < 1:
        raise ConfigError(f"--lfsr must be between 0 and 1 (got {lfsr:g})", hint="e.g. --lfsr 0.05")
    if spec.manifest is not None or (table is None and len(spec.inputs) != 1):
        raise ConfigError(f"--by splits one table, but {len(spec.inputs) + (spec.manifest is not None)} inputs were given",
                          hint="give one table (e.g. hlm batch screen.csv --by gene ...), or leave out --by to fit each file")
    t0 = time.perf_counter()
    out = Path(spec.out)
    if table is None:
        path = Path(spec.inputs[0])
        if any(ch in str(path) for ch in "*?[") and not path.exists():
            raise ConfigError(f"--by splits one table, not a glob ({spec.inputs[0]!r})", hint="name one file")
        table = data_mod.load_table(path, sep=spec.specs[0].sep)
    frame = table.frame
    source = table.source.name
    parts = split(frame, by, source)
    levels = level_sets(frame, [s.formula for s in spec.specs], by)
    names = safe_names([f for f, _ in parts])
    batch_out.prepare_out(out, {"formulas": [s.formula for s in spec.specs], "nested": len(spec.specs) > 1})
    with batch_out.locked(out):
        named = write_features(out, parts, names)
    lean = {} if full else {"lean": True, "plots": False}
    specs = [s.model_copy(update={"group_levels": levels, **lean}) for s in spec.specs]
    bspec = dataclasses.replace(spec, specs=specs, named_inputs=named, after_fit="hlm_cli.workflows.screen:summarise_feature")
    split_s = time.perf_counter() - t0
    shared = None
    if getattr(spec, "share", False):  # --share: pass 1 over every feature, hyperpriors, pass 2
        from hlm_cli.workflows.share import run_shared_batch

        shared = run_shared_batch(bspec, on_progress=on_progress, on_stage=on_stage)
        result = shared.result
    else:
        result = run_batch(bspec, on_progress=on_progress)
    t1 = time.perf_counter()
    from hlm_cli.workflows.batch import plan

    entries = plan(dataclasses.replace(bspec, force=True)).entries
    feats, vp = assemble(out, entries, result.status)
    feats, selection = select(add_ash(feats), lfsr)
    paths = write_tables(out, feats, vp, selection, lfsr)
    try:
        if plot_volcano(feats, out / VOLCANO_FILE) is not None:
            paths["volcano"] = out / VOLCANO_FILE
    except Exception:  # noqa: BLE001 - a figure never fails the batch
        pass
    if len(vp):
        try:
            from hlm_cli.outputs.varpart import plot_violin

            paths["violin"] = Path(plot_violin(vp, out / VIOLIN_FILE))
        except Exception:  # noqa: BLE001
            pass
    add_to_report(out, features_section(feats, selection, lfsr))
    return ScreenResult(result, feats, vp, selection, paths, lfsr, split_s, time.perf_counter() - t1, shared)
