"""Rich output of ``hlm loo``: per-model estimates, the Pareto k table, the comparison."""

from __future__ import annotations

import json
import sys

from rich.table import Table

from hlm_cli.cli.render import _out, status

__all__ = ["result", "json_result", "status", "model_block", "compare_table"]


def _f(v: float, digits: int = 1) -> str:
    return "nan" if v != v else f"{v:.{digits}f}"


def model_block(m) -> list:
    """The estimate table (Estimate, SE) and, for PSIS, the Pareto k table of one model."""
    out: list = []
    head = f"[bold]{m.name}[/bold]: {m.formula}  [dim]({m.n_obs} observations, {m.n_samples} draws)[/dim]"
    out.append(head)
    t = Table(show_edge=False, pad_edge=False, box=None)
    t.add_column("", justify="left")
    t.add_column("Estimate", justify="right")
    t.add_column("SE", justify="right")
    t.add_row(m.elpd_name, _f(m.elpd), _f(m.se))
    t.add_row(m.p_name, _f(m.p), _f(m.p_se))
    t.add_row(m.ic_name, _f(m.ic), _f(m.ic_se))
    out.append(t)
    est = f"Estimate: {m.estimate}"
    if m.method == "reloo" and m.refit_lines:
        est += " for CSV line" + ("s " if len(m.refit_lines) > 1 else " ") + ", ".join(str(v) for v in m.refit_lines)
    if m.n_refits:
        est += f"  [dim]({m.seconds:.0f} s)[/dim]"
    out.append(est)
    if m.subsample:  # a large run: the uncertainty subsampling adds, reported apart from the SE (as R's loo prints it)
        out.append(f"[dim]Subsampled PSIS-LOO: {m.subsample['subsample_size']} of {m.n_obs} observations evaluated exactly; "
                   f"subsampling SE {m.subsample['subsampling_se']:.2f} (the error of estimating the sum from the subsample, "
                   "besides the SE above; more with HLM_LOO_SUBSAMPLE shrinks it); Pareto k below is of the subsample[/dim]")
    if m.ktable is not None:
        kt = m.ktable
        before = " (before refits)" if m.method in ("reloo", "kfold") else ""
        out.append(f"Pareto k{before}: good <= {min(0.5, kt.good_k):.2f} < ok <= {kt.good_k:.2f} < bad <= 1 < very bad"
                   f"  [dim]({kt.good_k:.2f} = min(1 - 1/log10(S), 0.7), S = {kt.n_samples})[/dim]")
        k = Table(show_edge=False, pad_edge=False, box=None)
        k.add_column("", justify="left")
        k.add_column("", justify="left")
        k.add_column("Count", justify="right")
        k.add_column("Pct.", justify="right")
        n = sum(kt.counts.values()) or 1
        for key, interval, count in kt.bands:
            label = key.replace("_", " ")
            style = "red" if key in ("bad", "very_bad") and count else ""
            k.add_row(interval, f"({label})", f"[{style}]{count}[/{style}]" if style else str(count), f"{100.0 * count / n:.1f}%")
        out.append(k)
        out.append(f"max k = {kt.max_k:.2f}")
    return out


def compare_table(res) -> Table:
    """rank, elpd_diff, se_diff, elpd, se, p, weight, estimate; best model first."""
    label = {"loo": "PSIS-LOO", "waic": "WAIC", "kfold": "K-fold"}[res.criterion]
    if res.criterion == "loo" and any(m.criterion == "kfold" for m in res.models):
        label = "LOO and K-fold"
    t = Table(title=f"Model comparison ({label}; rank 1 = best)", title_justify="left",
              title_style="bold", show_edge=False, pad_edge=False)
    for col, just in (("rank", "right"), ("model", "left"), ("elpd_diff", "right"), ("se_diff", "right"),
                      ("elpd", "right"), ("se", "right"), ("p", "right"), ("weight", "right"), ("estimate", "left")):
        t.add_column(col, justify=just)
    for name, r in res.table.iterrows():
        t.add_row(str(int(r["rank"])), str(name), _f(r["elpd_diff"]), _f(r["dse"]), _f(r["elpd"]), _f(r["se"]),
                  _f(r["p"]), f"{r['weight']:.2f}", str(r["estimate"]))
    return t


def result(res, *, out=None, written=None) -> None:
    """Everything for the terminal: each model, the comparison, warnings and remedies."""
    for m in res.models:
        for item in model_block(m):
            _out.print(item)
        for w in m.warnings:
            _out.print(f"[yellow]warning:[/yellow] {w}")
        if m.recommendation:
            _out.print(f"  [dim]remedy:[/dim] {m.recommendation}")
        _out.print()
    if res.table is not None:
        _out.print(compare_table(res))
        _out.print()
        best = res.table.iloc[1] if len(res.table) > 1 else None
        if best is not None:
            d, se = float(best["elpd_diff"]), float(best["dse"])
            ratio = abs(d) / se if se > 0 else float("inf")
            _out.print(f"{res.table.index[0]} is ranked first; next is {res.table.index[1]} at elpd_diff {d:.1f} "
                       f"(SE {se:.1f}, {ratio:.1f} SE).")
            _out.print("[dim]A difference below about 4, or within 2 SE, does not separate the models.[/dim]")
    for note in res.notes:
        _out.print(f"[yellow]warning:[/yellow] {note}")
    if written:
        _out.print(f"Wrote {out}/ ({', '.join(written)})")


def json_result(res) -> None:
    """JSON on stdout; warnings also go to stderr so they are not missed."""
    for m in res.models:
        for w in m.warnings:
            print(f"warning: {m.name}: {w}", file=sys.stderr)
    for note in res.notes:
        print(f"warning: {note}", file=sys.stderr)
    sys.stdout.write(json.dumps(res.to_json(), indent=2, allow_nan=False, default=str) + "\n")

