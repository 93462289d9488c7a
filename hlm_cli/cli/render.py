"""Rich tables and messages: the only module that prints."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape  # noqa: F401  (re-exported for cli modules)
from rich.table import Table

_out = Console(highlight=False, soft_wrap=False, emoji=False)
if not _out.is_terminal:  # files and pipes: wide enough for the summary tables
    _out = Console(highlight=False, soft_wrap=False, width=120, emoji=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


_said: list[str] = []  # error messages printed in this process (main() avoids repeating one)


def error(message: str, hint: str | None = None) -> None:
    """Two lines on stderr: 'error: ...' and 'hint:  ...' (hint lines indented)."""
    _said.append(message)
    print(f"error: {message}", file=sys.stderr)
    if hint:
        lines = hint.split("\n")
        print(f"hint:  {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(f"       {line}", file=sys.stderr)


def said_interrupted() -> bool:
    return any(m.startswith("interrupted") for m in _said)


def status(message: str, quiet: bool = False):
    """A spinner context for long stages (no-op under --quiet or when not a terminal)."""
    from contextlib import nullcontext

    if quiet or not _err.is_terminal:
        return nullcontext()
    return _err.status(message)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        _err.print(message)


def _fmt(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if v != v:
        return "nan"
    if abs(v) >= 1e4 or (abs(v) < 1e-3 and v != 0):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits, len(str(int(abs(v)))))}g}"


SECTIONS = (
    ("population", "Population-level effects"),
    ("group_sd", "Group-level effects: standard deviations"),
    ("correlation", "Group-level effects: correlations"),
    ("family", "Family-specific parameters"),
)


def summary_tables(summary, title: str | None = None) -> list[Table]:
    tables = []
    for kind, heading in SECTIONS:
        rows = summary[summary["kind"] == kind]
        if rows.empty:
            continue
        t = Table(title=heading, title_justify="left", title_style="bold", show_edge=False, pad_edge=False)
        for col, just in (("", "left"), ("Estimate", "right"), ("Est.Error", "right"), ("l-94% HDI", "right"), ("u-94% HDI", "right"), ("R-hat", "right"), ("Bulk ESS", "right"), ("Tail ESS", "right")):
            t.add_column(col, justify=just)
        for name, r in rows.iterrows():
            label = name
            if kind == "group_sd":
                label = f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"
            t.add_row(escape(label), _fmt(r["mean"]), _fmt(r["sd"]), _fmt(r["hdi94_lb"]), _fmt(r["hdi94_ub"]), f"{r['r_hat']:.3f}", f"{r['ess_bulk']:.0f}", f"{r['ess_tail']:.0f}")
        tables.append(t)
    return tables


def fit_result(result) -> None:
    spec = result.spec
    if spec.quiet:
        for f in result.findings:
            print(f"warning: {f.message}", file=sys.stderr)
        return
    built = result.built
    d = built.design
    _out.print(f"[bold]Family:[/bold] {built.family.name} (link: {built.family.link})")
    _out.print(f"[bold]Formula:[/bold] {escape(spec.formula)}")
    groups = escape("; ".join(f"{g.factor} ({len(g.levels)} levels)" for g in d.groups) or "none")
    drop = f", {result.table.dropped} dropped for missing values" if result.table.dropped else ""
    _out.print(f"[bold]Data:[/bold] {escape(str(spec.data))} ({d.n} rows used{drop}); groups: {groups}")
    chains, draws = spec.sampler.chains, spec.sampler.draws
    _out.print(f"[bold]Draws:[/bold] {chains} chains x {draws} draws after {spec.sampler.tune} warm-up ({spec.sampler.sampler})")
    param = ", ".join(f"({k}): {v.label}" for k, v in built.parameterization.items())
    if param:
        _out.print(f"[bold]Group terms sampled as:[/bold] {escape(param)}")
    _out.print()
    for t in summary_tables(result.summary):
        _out.print(t)
        _out.print()
    findings(result.findings)
    tm = result.timings
    cached = {
        "cache": " (compiled model from cache)",
        "quick": _quick_note(),
    }.get(result.compile_mode, "")
    _out.print(
        f"Wrote {result.out}/ (summary.csv, posterior.nc, run.json{', plots/, report.html' if spec.plots else ''}) in {tm.get('total', 0):.1f} s: "
        f"compile {tm.get('compile', 0):.1f} s{cached}, sampling {tm.get('sample', 0):.1f} s"
    )


def _quick_note() -> str:
    import sys

    quick = sys.modules.get("hlm_cli.compile_quick")
    if quick is not None and quick.pending() and quick.background_enabled():
        return " (quick first fit of this model; it is compiled for the cache in the background)"
    return " (quick first fit of this model, not compiled)"


def findings(items) -> None:
    if not items:
        _out.print("[green]Diagnostics: all checks passed[/green] (R-hat <= 1.01, ESS >= 100 per chain, no divergences, no tree-depth hits, E-BFMI >= 0.3)")
        return
    for f in items:
        _out.print(f"[yellow]warning:[/yellow] {escape(f.message)}")
        _out.print(f"  [dim]remedy:[/dim] {escape(f.remedy)}")
    _out.print()
