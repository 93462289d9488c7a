"""Rich tables and messages: the only module that prints (each command's result has a function here)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape  # also used by cli modules (render.escape)
from rich.table import Table
from rich.text import Text

_out = Console(highlight=False, soft_wrap=False, emoji=False)
if not _out.is_terminal:  # files and pipes: wide enough for the summary tables
    _out = Console(highlight=False, soft_wrap=False, width=120, emoji=False)
SHOWN_ROWS = 20  # rows of a predict or pooling table printed; the CSV has them all

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


def status(message: str, quiet: bool = False) -> FitStatus:
    """A context for long stages: a spinner naming the stage and, while sampling, live progress
    (:class:`FitStatus`); silent under --quiet."""
    return FitStatus(message, quiet=quiet)


# -- live sampling progress (hlm fit)

#: Seconds between two redraws of the sampling line on a terminal (at most 5 a second).
PROGRESS_INTERVAL = 0.2
#: Off a terminal (CI, a log file): a line when another LINE_STEP of the iterations is done
#: and at least LINE_INTERVAL seconds passed since the last one (so at most 10 lines a fit).
LINE_STEP = 0.1
LINE_INTERVAL = 10.0
_TICK = 1e-9  # an update landing on the interval counts as on time (float clocks)


def duration(seconds: float | None) -> str:
    """0:07, 12:05, 1:02:03; '?' when unknown."""
    import math

    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def draws_text(p, *, compact: bool = False) -> str:
    """One line for a :class:`hlm_cli.sampling.DrawProgress`, e.g.
    ``sampling 62% (4 chains): warmup 4,000/4,000, draws 1,000/4,000; 0 divergences; 0:05 elapsed, ~0:03 left``;
    ``compact`` (a narrow terminal) leaves out the chains, the digit grouping and the elapsed time:
    ``sampling 62%: warmup 4000/4000, draws 1000/4000; 0 divergences; ~0:03 left``."""
    pct = int(p.fraction * 100)  # floor: 100% only when done
    n = "{:d}" if compact else "{:,}"
    div = f"{n.format(p.divergences)} divergence{'' if p.divergences == 1 else 's'}"
    left = p.time_left if p.fraction < 1 else None
    if compact:
        timing = f"~{duration(left)} left" if left is not None else f"{duration(p.elapsed)} elapsed"
        head = f"sampling {pct}%"
    else:
        timing = f"{duration(p.elapsed)} elapsed" + (f", ~{duration(left)} left" if left is not None else "")
        head = f"sampling {pct}% ({p.chains} chain{'' if p.chains == 1 else 's'})"
    warm = f"{n.format(p.warmup_done)}/{n.format(p.chains * p.tune)}"
    kept = f"{n.format(p.draws_done)}/{n.format(p.chains * p.draws)}"
    return f"{head}: warmup {warm}, draws {kept}; {div}; {timing}"


def _draws_renderable(p, width: int = 80):
    """:func:`draws_text` for a terminal ``width`` columns wide: divergences in yellow, a bar
    before it when the line still fits, the compact text when the full one does not."""
    from rich.progress_bar import ProgressBar

    full = draws_text(p)
    text = Text(full if len(full) + 3 <= width else draws_text(p, compact=True))
    if p.divergences:
        text.highlight_regex(r"[\d,]+ divergences?", "yellow")
    if len(text) + 24 > width:  # spinner, bar, padding
        return text
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(ProgressBar(total=max(p.total, 1), completed=p.warmup_done + p.draws_done, width=20), text)
    return grid


class Throttle:
    """True at most once per ``interval`` seconds of ``clock`` (``force``: now, whatever the time)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL, clock=None) -> None:
        import time

        self.interval = interval
        self.clock = clock or time.monotonic
        self.last: float | None = None

    def ready(self, *, force: bool = False) -> bool:
        now = self.clock()
        if force or self.last is None or now - self.last >= self.interval - _TICK:
            self.last = now
            return True
        return False


class LinePolicy:
    """When a log (stderr not a terminal) gets a progress line: another ``step`` of the work
    done since the last line and at least ``interval`` seconds of ``clock`` since the last line
    (or the first report). Never one line per draw; a fit shorter than ``interval`` prints none."""

    def __init__(self, step: float | None = None, interval: float | None = None, clock=None) -> None:
        import time

        self.step = LINE_STEP if step is None else step
        self.interval = LINE_INTERVAL if interval is None else interval
        self.clock = clock or time.monotonic
        self.last: float | None = None
        self.next_mark = self.step

    def due(self, fraction: float) -> bool:
        import math

        now = self.clock()
        if self.last is None:
            self.last = now
        if fraction + 1e-12 >= self.next_mark and now - self.last >= self.interval - _TICK:
            self.last = now
            self.next_mark = (math.floor(fraction / self.step + 1e-9) + 1) * self.step
            return True
        return False


class FitStatus:
    """What :func:`status` returns: the stage spinner, and live sampling progress.

    On a terminal: a transient spinner whose text is the stage (:meth:`update`) and, while
    nutpie samples, a bar with chains x draws done, divergences and time left, redrawn at most
    every :data:`PROGRESS_INTERVAL` s. Off a terminal: no spinner, and a progress line now and
    then (:class:`LinePolicy`). Under --quiet: nothing, and :attr:`on_draws` is None.
    :meth:`draws` is called from a sampler thread: it only swaps the spinner's text or prints
    a line.
    """

    def __init__(self, message: str, *, quiet: bool = False, console: Console | None = None, clock=None, stream=None) -> None:
        self.message = message
        self.quiet = quiet
        self.console = console or _err
        self.tty = not quiet and self.console.is_terminal
        self.stream = stream  # None: sys.stderr when writing
        self.throttle = Throttle(PROGRESS_INTERVAL, clock)
        self.lines = LinePolicy(clock=clock)
        self._spinner = None

    def __enter__(self) -> FitStatus:
        if self.tty:
            self._spinner = self.console.status(self.message)
            self._spinner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        spinner, self._spinner = self._spinner, None
        if spinner is not None:
            spinner.__exit__(*exc)

    def update(self, message: str) -> None:
        """Show the stage ``message`` next to the spinner."""
        if self._spinner is not None:
            self._spinner.update(message)

    @property
    def on_draws(self):
        """The sink for :func:`hlm_cli.workflows.fit.run_fit`'s ``on_draws``; None under --quiet."""
        return None if self.quiet else self.draws

    def draws(self, p) -> None:
        """Show a :class:`hlm_cli.sampling.DrawProgress`."""
        if self.quiet:
            return
        if self.tty:
            spinner = self._spinner
            if spinner is not None and self.throttle.ready(force=p.fraction >= 1):
                spinner.update(_draws_renderable(p, self.console.width))
        elif self.lines.due(p.fraction):
            print(draws_text(p), file=self.stream or sys.stderr, flush=True)


def info(message: str, quiet: bool = False) -> None:
    if not quiet:
        _err.print(message)


def _as_number(v) -> float | str:
    """``v`` as a finite float, or the text to print instead (not a number, nan, inf, -inf)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return v


def _fmt(v, digits: int = 3) -> str:
    """One number on its own (a note, a ROPE bound): 3 significant digits, never 1e+05 notation
    for an ordinary value. Table columns use :func:`column_format` instead."""
    v = _as_number(v)
    if isinstance(v, str):
        return v
    if v != 0 and (abs(v) >= 1e12 or abs(v) < 1e-4):
        return f"{v:.2e}"
    if abs(v) >= 10 ** digits:
        return f"{v:.0f}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits, len(str(int(abs(v)))))}g}"


MIN_DECIMALS = 2  # as brms prints
MAX_DECIMALS = 6


def decimals(values) -> int | None:
    """Decimals for one table column: 2 (brms), more when its largest value is below 0.1 so
    that it keeps two significant digits (0.035 -> 3), at most 6; None (scientific) for a
    column whose values are all tiny (< 1e-4) or huge (>= 1e12)."""
    import math

    finite = [abs(float(v)) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]
    top = max(finite, default=0.0)
    if top == 0:
        return MIN_DECIMALS
    if top < 1e-4 or top >= 1e12:
        return None
    return min(MAX_DECIMALS, max(MIN_DECIMALS, 1 - math.floor(math.log10(top))))


def column_format(values):
    """A formatter giving every number of a column the same number of decimals (so a
    right-justified column lines up on its decimal point)."""
    d = decimals(values)

    def fmt(v) -> str:
        v = _as_number(v)
        if isinstance(v, str):
            return v
        out = f"{v:.2e}" if d is None else f"{v:.{d}f}"
        return "0" + out[2:] if out.startswith("-0") and float(out) == 0 else out  # no "-0.00"

    return fmt


def _pct(prob: float) -> str:
    """0.94 -> '94%', 0.975 -> '97.5%'."""
    return f"{round(float(prob) * 100, 6):g}%"


SECTIONS = (
    ("population", "Population-level effects"),
    ("group_sd", "Group-level effects: standard deviations"),
    ("correlation", "Group-level effects: correlations"),
    ("family", "Family-specific parameters"),
)


def display_name(name: str, kind: str) -> str:
    """The printed label of a summary row: ``1|Subject_sigma`` -> ``sd(Intercept|Subject)``."""
    if kind == "group_sd" and not name.startswith("sds("):  # a smooth's sds(s(x)) as named
        return f"sd({name.removesuffix('_sigma').replace('1|', 'Intercept|', 1)})"
    return name


def summary_tables(summary, title: str | None = None) -> list[Table]:
    """brms-style tables of a summary.csv (any interval width: read from its hdiNN_ columns)."""
    from hlm_cli.outputs.summary import CI_PROB, ci_names, ci_of

    prob = ci_of(summary) or CI_PROB
    n = ci_names(prob)
    pct = _pct(prob)
    tables = []
    for kind, heading in SECTIONS:
        rows = summary[summary["kind"] == kind]
        if rows.empty:
            continue
        t = Table(title=heading, title_justify="left", title_style="bold", show_edge=False, pad_edge=False)
        for col, just in (("", "left"), ("Estimate", "right"), ("Est.Error", "right"), (f"l-{pct} HDI", "right"), (f"u-{pct} HDI", "right"), ("R-hat", "right"), ("Bulk ESS", "right"), ("Tail ESS", "right")):
            t.add_column(col, justify=just)
        fm = {c: column_format(rows[c].tolist()) for c in ("mean", "sd", n["hdi_lb"], n["hdi_ub"])}
        for name, r in rows.iterrows():
            t.add_row(escape(display_name(str(name), kind)), fm["mean"](r["mean"]), fm["sd"](r["sd"]),
                      fm[n["hdi_lb"]](r[n["hdi_lb"]]), fm[n["hdi_ub"]](r[n["hdi_ub"]]),
                      _whole(r["r_hat"], 3), _whole(r["ess_bulk"]), _whole(r["ess_tail"]))
        tables.append(t)
    return tables


def _whole(v, digits: int = 0) -> str:
    v = float(v)
    return "nan" if v != v else f"{v:.{digits}f}"


def summary_result(result) -> None:
    """hlm summary: the run's formula and family, then its tables."""
    info = result.info
    cfg = info.get("config") or {}
    fam = info.get("family")
    fam = fam if isinstance(fam, dict) else {"name": cfg.get("family", "?"), "link": "?"}
    _out.print(f"[bold]Run:[/bold] {escape(str(result.run_dir))}")
    _out.print(f"[bold]Family:[/bold] {escape(str(fam.get('name', '?')))} (link: {escape(str(fam.get('link', '?')))})")
    _out.print(f"[bold]Formula:[/bold] {escape(str(cfg.get('formula', '?')))}")
    how = "recomputed from posterior.nc" if result.recomputed else "from summary.csv"
    _out.print(f"[bold]Intervals:[/bold] {_pct(result.ci)} ({how})")
    _out.print()
    for t in summary_tables(result.summary):
        _out.print(t)
        _out.print()


def priors_result(result) -> None:
    """hlm priors: one row per parameter, with the name --prior takes for it."""
    _out.print(f"[bold]Family:[/bold] {escape(result.family)} (link: {escape(result.link)})")
    _out.print(f"[bold]Formula:[/bold] {escape(result.spec.formula)}")
    table = Table(show_edge=False, pad_edge=False)
    for c in ("parameter", "set with --prior", "class", "group", "prior", "source"):
        table.add_column(c, no_wrap=True)
    for r in result.table.itertuples(index=False):
        table.add_row(Text(r.parameter), Text(r.prior_name), r._2, Text(r.group), Text(r.prior), r.source)
    _out.print(table)
    _out.print('Change one with --prior NAME=Dist(args), e.g. --prior "sigma=HalfNormal(10)" (b, sd, cor: a whole class).', markup=False)


def fit_result(result) -> None:
    spec = result.spec
    if spec.quiet:
        for f in result.findings:
            if f.severity == "warning":
                print(f"warning: {f.message}", file=sys.stderr)
        return
    built = result.built
    d = built.design
    _out.print(f"[bold]Family:[/bold] {built.family.name} (link: {built.family.link})")
    _out.print(f"[bold]Formula:[/bold] {escape(spec.formula)}")
    groups = escape("; ".join(f"{g.factor} ({len(g.levels)} levels)" for g in d.groups) or "none")
    ar = getattr(d, "autocor", None)
    if ar is not None:  # docs/covariance.md: sigma is the residual's marginal SD
        groups += escape(f"; residual AR(1) over {ar.time}" + (f" within {':'.join(ar.gr)}" if ar.gr else "")
                         + " (sigma: marginal SD)")
    drop = f", {result.table.dropped} dropped for missing values" if result.table.dropped else ""
    _out.print(f"[bold]Data:[/bold] {escape(str(spec.data))} ({d.n} rows used{drop}); groups: {groups}")
    chains, draws = spec.sampler.chains, spec.sampler.draws
    ess = getattr(result, "ess", None)  # --ess: the draws kept, and why sampling stopped
    if ess is not None:
        draws = ess.draws
    _out.print(f"[bold]Draws:[/bold] {chains} chains x {draws} draws after {spec.sampler.tune} warm-up ({spec.sampler.sampler})")
    if ess is not None:
        _out.print(f"[bold]ESS target:[/bold] {escape(ess.line())}")
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
        f"Wrote {result.out}/ (summary.csv, sensitivity.csv, posterior.nc, run.json{', plots/, report.html' if spec.plots else ''}) in {tm.get('total', 0):.1f} s: "
        f"compile {tm.get('compile', 0):.1f} s{cached}, sampling {tm.get('sample', 0):.1f} s"
    )


def _quick_note() -> str:
    import sys

    quick = sys.modules.get("hlm_cli.sampling.quick")
    if quick is not None and quick.pending() and quick.background_enabled():
        return " (quick first fit of this model; it is compiled for the cache in the background)"
    return " (quick first fit of this model, not compiled)"


def sensitivity_result(result) -> None:
    """hlm sensitivity: the power-scaling table, then what the flagged rows mean."""
    _out.print(f"[bold]Run:[/bold] {escape(str(result.run_dir))}")
    table = Table(show_edge=False, pad_edge=False, title="Power-scaling sensitivity (> 0.05: sensitive)")
    for c in ("parameter", "prior", "likelihood", "diagnosis"):
        table.add_column(c, no_wrap=True, justify="right" if c in ("prior", "likelihood") else "left")
    for r in result.table.itertuples(index=False):
        table.add_row(Text(str(r.parameter)), _fmt(r.prior), _fmt(r.likelihood), Text(str(r.diagnosis or "")))
    _out.print(table)
    for f in result.findings:
        _out.print(f"note: {escape(f.message)}")
        _out.print(f"  [dim]what to do:[/dim] {escape(f.remedy)}")
    if not result.findings:
        _out.print("No parameter is sensitive to its prior.")
    if result.written is not None:
        _out.print(f"Wrote {escape(str(result.written))}")


def findings(items) -> None:
    notes = [f for f in items if f.severity == "note"]
    warnings = [f for f in items if f.severity != "note"]
    for f in notes:  # hints about the data or the model, not failed checks
        _out.print(f"note: {escape(f.message)}")
    if not warnings:
        from hlm_cli.diagnostics import PASSED  # the thresholds' one home

        _out.print(f"[green]Diagnostics: all checks passed[/green] ({escape(PASSED)})")
        return
    for f in warnings:
        _out.print(f"[yellow]warning:[/yellow] {escape(f.message)}")
        _out.print(f"  [dim]remedy:[/dim] {escape(f.remedy)}")
    _out.print()


# -- hlm batch


class BatchProgress:
    """A Rich progress bar on stderr (done / failed / running, ETA); in logs, a line per fit."""

    def __init__(self, enabled: bool) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.log = enabled and not self.console.is_terminal  # e.g. a SLURM job's log file
        self.enabled = enabled and self.console.is_terminal
        self.bar = None
        self.task = None
        self.finished = 0

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                SpinnerColumn(), TextColumn("fitting"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[green]{task.fields[ok]} ok[/] [yellow]{task.fields[warn]} warn[/] [red]{task.fields[failed]} failed[/] {task.fields[running]} running"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False,
            )
            self.bar.__enter__()
        return self

    def stage(self, name: str) -> None:
        """hlm batch --share: a new pass (pass 1, hyperpriors, pass 2) starts; a new bar per pass."""
        self.console.print(f"--share: {name}")
        self.task = None
        self.finished = 0

    def update(self, p) -> None:
        if self.log and p.done + p.failed > self.finished:
            self.finished = p.done + p.failed
            print(f"[{self.finished}/{p.total}] {p.last}", file=sys.stderr, flush=True)
        if self.bar is None:
            return
        fields = dict(ok=p.done - p.warnings, warn=p.warnings, failed=p.failed, running=p.running)
        if self.task is None:
            if p.skipped:
                self.console.print(f"skipping {p.skipped} finished fit(s); fitting {p.total} with {p.workers or '?'} worker(s)")
            self.task = self.bar.add_task("fitting", total=p.total or None, **fields)
        self.bar.update(self.task, completed=p.done + p.failed, **fields)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def batch_result(result, quiet: bool) -> None:
    """hlm batch's closing lines: counts, each failure on stderr, the files written."""
    out = Console(highlight=False, soft_wrap=True)
    status = result.status
    failed = status[status["status"] == "failed"]
    n = len(status)
    if not quiet:
        warn = result.count("diagnostics-warning")
        pending = result.count("pending")
        extra = f", {pending} not finished" if pending else ""
        out.print(
            f"Fitted {result.count('ok') + warn} of {n} ({warn} with diagnostics warnings, {len(failed)} failed{extra}); "
            f"{result.fitted} run now, {result.skipped} already done; {result.wall_s:.1f} s"
            + (f" with {result.workers} worker(s)" if result.workers else "")
        )
    for _, row in failed.iterrows():
        print(f"failed: {row['run_dir']} ({row['input']}): {row['error']}", file=sys.stderr)
    if not quiet:
        report = result.summary_path.parent / "batch_report.html"
        extra = f" and {report}" if report.exists() else ""
        out.print(f"Wrote {result.summary_path}, {result.status_path}{extra}")
    if n and result.succeeded == 0 and len(failed):
        first = failed.iloc[0]
        error(f"no input was fitted ({len(failed)} failed); first: {first['error']}",
              first["hint"] or f"see {result.status_path}")


def shared_priors(shared, quiet: bool) -> None:
    """hlm batch --share: the priors learned from pass 1 and used by pass 2."""
    if quiet:
        return
    con = Console(highlight=False, emoji=False)
    t = Table(title=f"Shared priors learned from pass 1 ({shared.pass1.succeeded} inputs fitted)", title_justify="left")
    for c in ("parameter", "kind", "prior (pass 2)", "inputs"):
        t.add_column(c, justify="right" if c == "inputs" else "left")
    for r in shared.table.itertuples():
        prior = shared.priors.get(r.parameter, "(yours, from --prior)")
        t.add_row(escape(str(r.parameter)), str(r.kind), escape(prior), str(r.n_inputs))
    con.print(t)
    extra = "; they changed since the last run, so every input was refitted" if shared.refit else ""
    con.print(f"Wrote {shared.path}{extra}")


# -- hlm hypothesis, contrast, predict, pooling


def hypothesis_result(result) -> None:
    """hlm hypothesis: the brms-style table, its notes, and the CSV written."""
    pct = _pct(result.prob)
    t = result.table
    fm = {c: column_format(t[c].tolist()) for c in ("estimate", "est_error", "lower", "upper")}
    fm["evid_ratio"] = column_format([v for v in t["evid_ratio"].tolist() if v == v and v != float("inf")])
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Hypothesis", overflow="fold")
    for c in ("Estimate", "Est.Error", f"l-{pct} HDI", f"u-{pct} HDI", "Evid.Ratio", "Post.Prob"):
        table.add_column(c, justify="right", no_wrap=True)
    table.add_column("Evidence", no_wrap=True)
    notes = []
    for i, r in enumerate(result.table.itertuples(), start=1):
        mark = ""
        if r.note:
            notes.append(f"[{i}] {r.note}")
            mark = f" [{i}]"
        er = "inf" if r.evid_ratio == float("inf") else fm["evid_ratio"](r.evid_ratio)
        pp = "" if r.post_prob != r.post_prob else f"{r.post_prob:.3f}"
        er = "" if r.evid_ratio != r.evid_ratio else er
        table.add_row(Text(r.hypothesis + mark), fm["estimate"](r.estimate), fm["est_error"](r.est_error), fm["lower"](r.lower), fm["upper"](r.upper), er, pp, r.evidence)
    _out.print(table)
    for n in notes + [f"note: {n}" for n in result.notes]:
        _out.print(n, markup=False)
    _out.print(f"Wrote {result.csv}", markup=False)


def contrast_result(result) -> None:
    """hlm contrast: the table of differences per level (and scale), notes, files written."""
    t = result.table
    identity = result.family != "lognormal" and result.link == "identity"
    show = t[t["scale"] == "response"] if identity else t
    pct = _pct(result.spec.prob)
    has_rope = t["p_rope"].notna().any()
    has_es = t["es_mean"].notna().any()
    by = f", by {result.spec.by}" if result.spec.by else ""
    _out.print(f"[bold]Contrast:[/bold] {escape(result.spec.term)} ({result.term_kind}{escape(by)}); family {result.family} (link: {result.link})")
    table = Table(show_edge=False, pad_edge=False)
    cols = ["contrast", "level"] + ([] if identity else ["scale"])
    for c in cols:
        table.add_column(c)
    for c in ("mean", f"l-{pct} HDI", f"u-{pct} HDI", "P(direction)"):
        table.add_column(c, justify="right")
    if has_rope:
        lo, hi = t["rope_lower"].iloc[0], t["rope_upper"].iloc[0]
        on = " es" if result.spec.rope_on == "effect_size" else ""
        table.add_column(f"P(ROPE{on} {_fmt(lo)},{_fmt(hi)})", justify="right")
    if has_es:
        table.add_column(f"effect size [{pct} HDI]", justify="right")
    fm = {c: column_format(show[c].tolist()) for c in ("mean", "lower", "upper")}
    es = column_format(show["es_mean"].tolist() + show["es_lower"].tolist() + show["es_upper"].tolist()) if has_es else None
    for r in show.itertuples():
        row = [Text(str(r.contrast)), Text(str(r.level))] + ([] if identity else [r.scale])
        row += [fm["mean"](r.mean), fm["lower"](r.lower), fm["upper"](r.upper), f"{r.pd:.3f}"]
        if has_rope:
            row.append(f"{r.p_rope:.3f}")
        if has_es:
            row.append(f"{es(r.es_mean)} [{es(r.es_lower)}, {es(r.es_upper)}]")
        table.add_row(*row)
    _out.print(table)
    for note in result.notes:
        _out.print(f"note: {note}", markup=False)
    wrote = f"{result.csv}" + (f" and {result.plot}" if result.plot else "")
    _out.print(f"Wrote {wrote}", markup=False)


def predict_result(result) -> None:
    """hlm predict: the first SHOWN_ROWS predictions, notes, the CSV written."""
    t = result.table
    pct = _pct(result.interval)
    table = Table(show_edge=False, pad_edge=False, title=f"Predictions ({result.kind}), {pct} intervals", title_justify="left", title_style="bold")
    names = {"lower": f"l-{pct}", "upper": f"u-{pct}"}
    for c in t.columns:
        table.add_column(Text(names.get(c, str(c))), justify="right" if c in ("mean", "sd", "lower", "upper") else "left")
    shown = t.head(SHOWN_ROWS)
    fm = {c: column_format(shown[c].tolist()) for c in ("mean", "sd", "lower", "upper") if c in shown.columns}
    for row in shown.itertuples(index=False):
        table.add_row(*(fm[c](v) if c in fm else (_fmt(v) if isinstance(v, float) else Text(str(v))) for c, v in zip(t.columns, row, strict=True)))
    _out.print(table)
    if len(t) > SHOWN_ROWS:
        _out.print(f"... {len(t) - SHOWN_ROWS} more rows in the CSV")
    for n in result.notes:
        _out.print(f"note: {n}", markup=False)
    _out.print(f"Wrote {result.csv}", markup=False)


def pooling_result(result) -> None:
    """hlm pooling: the estimates of the first SHOWN_ROWS levels, the MSE against a truth, files written."""
    con = Console(highlight=False, emoji=False)
    t = Table(title=f"Pooling by {escape(result.factor)}", title_justify="left")
    for c in result.table.columns:
        t.add_column(c, justify="left" if c == "level" else "right")
    for _, r in result.table.head(SHOWN_ROWS).iterrows():
        t.add_row(*[escape(str(v)) if isinstance(v, str) else f"{v:.4g}" for v in r])
    con.print(t)
    if len(result.table) > SHOWN_ROWS:
        con.print(f"... {len(result.table) - SHOWN_ROWS} more levels in {result.csv}")
    if result.mse:
        best = min(result.mse, key=result.mse.get)
        con.print("MSE against the truth: " + ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in result.mse.items()) + f" (best: {best.replace('_', ' ')})")
    if result.report is not None:
        con.print(f"Wrote {result.csv} and {result.png}; added them to {result.report}")
    else:
        con.print(f"Wrote {result.csv} and {result.png}")


# -- hlm varpart


def varpart_result(result) -> None:
    """hlm varpart: one row per component (fraction mean and interval, latent-scale variance)."""
    con = Console(highlight=False, emoji=False)
    pct = int(round(result.ci * 100))
    t = Table(title=f"Variance partition ({result.family}, latent scale; fractions per posterior draw)", title_justify="left")
    for c in ("component", "fraction", f"{pct}% interval", "variance"):
        t.add_column(c, justify="left" if c == "component" else "right")
    for _, r in result.table.iterrows():
        t.add_row(escape(str(r["component"])), f"{r['mean']:.3f}", f"{r['lower']:.3f} - {r['upper']:.3f}", f"{r['variance']:.4g}")
    con.print(t)
    con.print(f"Wrote {result.csv}")


# -- hlm sbc


def sbc_progress_text(p) -> str:
    """The live line of hlm sbc: stage, simulations fitted, failed, with divergences."""
    if p.stage in ("build", "simulate"):
        return {"build": "SBC: reading the data and building the model", "simulate": "SBC: drawing from the priors"}[p.stage]
    if p.stage == "summarize":
        return "SBC: ranking and testing uniformity"
    finished = p.done + p.failed
    extra = f", {p.failed} failed" if p.failed else ""
    div = f", {p.divergent} with divergences" if p.divergent else ""
    workers = f" ({p.workers} workers)" if p.workers > 1 else ""
    return f"SBC: {finished}/{p.total} simulations fitted{extra}{div}{workers}"


def sbc_result(result) -> None:
    """hlm sbc: the uniformity table per quantity, counts, the verdict and the files."""
    table = Table(show_edge=False, pad_edge=False, title="Simulation-based calibration (ranks of the true values)")
    for c in ("parameter", "n_sims", "max_ecdf_diff", "p_adjusted", "verdict"):
        table.add_column(c, no_wrap=True, justify="left" if c in ("parameter", "verdict") else "right")
    for r in result.summary.itertuples(index=False):
        verdict = Text(str(r.verdict), style="red" if r.verdict == "fail" else "green")
        table.add_row(Text(str(r.parameter)), str(r.n_sims), _fmt(r.max_ecdf_diff), _fmt(r.p_adjusted), verdict)
    _out.print(table)
    _out.print(f"{result.n_ok} of {result.n_sims} simulations fitted ({result.n_failed} failed, "
               f"{result.n_divergent} with divergent transitions); {result.wall_s:.1f} s"
               + (f" with {result.workers} workers" if result.workers > 1 else ""))
    if result.n_divergent:
        _out.print(f"note: {result.n_divergent} simulation(s) had divergent transitions; they are kept in the ranks "
                   "(see sbc.json); try --target-accept 0.95 or --parameterization")
    failed = list(result.summary.loc[result.summary["verdict"] == "fail", "parameter"])
    if failed:
        _out.print(f"[red]SBC fails for {escape(', '.join(failed))}[/red]: the posterior is not calibrated for "
                   "the model the data were simulated from (see sbc_ecdf.png and docs/sbc.md)")
    elif len(result.summary):
        _out.print("[green]SBC passes[/green]: the ranks are consistent with uniform for every quantity")
    files = ", ".join(str(result.out / f) for f in result.files.values())
    _out.print(f"Wrote {escape(files)}")
