"""The Python API: hlm's workflows for notebooks and scripts.

>>> import hlm
>>> fit = hlm.fit("sample_data/cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)",
...               draws=300, chains=2)                                  # doctest: +SKIP
>>> fit.summary()                                                       # doctest: +SKIP

Every function here is a thin layer over :mod:`hlm_cli.workflows` (the same code the CLI
runs) and writes the same run directory as ``hlm fit --out``. Mistakes raise the same
:class:`~hlm_cli.errors.HlmError` kinds the CLI prints (``InputError``, ``FormulaError``,
``PriorError``, ``ConfigError``, ``OutputError``, ``SamplingError``); nothing here prints or
exits.

Where the files live
--------------------
``fit(data, ..., out=None)`` writes the run directory into a private temporary folder owned
by the returned :class:`Fit` (deleted when the Fit is garbage collected or the process
ends). A DataFrame given as ``data`` is written there too, as CSV, because a run records the
sha256 of the file it was fitted to. :meth:`Fit.save` copies the run directory to a
permanent place; when the data were a DataFrame it also writes them beside the run
directory as ``DIR.data.csv`` (the run directory holds only hlm's own files, see
:data:`hlm_cli.outputs.rundir.RUN_FILES`) and points run.json at that copy, so that
``hlm.load(DIR)`` and every ``hlm`` command work on the saved run. ``fit(DataFrame,
out=DIR)`` does the same at once.

Importing this module is cheap: pandas, PyMC and ArviZ are imported when first needed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hlm_cli.errors import ConfigError, HlmError, InputError, OutputError, PriorError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["Fit", "fit", "load", "compare", "batch", "sbc", "HlmError"]

DATA_SUFFIX = ".data.csv"  # a DataFrame's CSV beside a saved run directory: DIR.data.csv


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _is_frame(obj: Any) -> bool:
    """A pandas DataFrame, tested without importing pandas when it is not loaded."""
    import sys

    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def _as_path(obj: Any, what: str) -> Path:
    if isinstance(obj, (str, os.PathLike)) and str(obj).strip():
        return Path(obj)
    raise ConfigError(f"{what} must be a pandas DataFrame or a file path (got {type(obj).__name__})",
                      hint=f'e.g. {what}="sample_data/cell_lines.csv" or {what}=pandas.read_csv(...)')


def _write_frame(frame, path: Path, what: str) -> Path:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"the {what} DataFrame is empty ({frame.shape[0]} rows, {frame.shape[1]} columns)",
                         hint="give a DataFrame with a header and at least one row")
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"the {what} DataFrame has two columns named {dup!r}", hint="rename one of them")
    frame.to_csv(path, index=False)
    return path


def _prior_flags(priors: Mapping[str, str] | None) -> list[str]:
    if priors is None:
        return []
    if not isinstance(priors, Mapping):
        raise PriorError(f"priors must be a dict of TERM -> \"Dist(args)\" (got {type(priors).__name__})",
                         hint='e.g. priors={"Intercept": "Normal(0, 5)", "sigma": "HalfNormal(1)"}')
    out = []
    for term, dist in priors.items():
        if not isinstance(term, str) or not isinstance(dist, str):
            raise PriorError(f"priors[{term!r}] must be text such as \"Normal(0, 5)\" (got {type(dist).__name__})",
                             hint='e.g. priors={"sigma": "HalfNormal(1)"}')
        out.append(f"{term}={dist}")
    return out


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def _data_beside(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + DATA_SUFFIX)


def _check_data_dest(dest: Path, src: Path, *, force: bool) -> None:
    """Refuse to overwrite a different DIR.data.csv unless ``force``."""
    if dest.exists() and not force:
        if dest.is_file() and dest.read_bytes() == Path(src).read_bytes():
            return
        raise OutputError(f"{str(dest)!r} exists (the data of a run saved there before?)",
                          hint="choose another directory, remove that file, or pass force=True")
    if dest.exists() and not dest.is_file():
        raise OutputError(f"{str(dest)!r} exists and is not a file", hint="choose another directory")


def _point_at_data(run_json: Path, data_file: Path) -> None:
    """run.json's data path (and the config's) -> ``data_file`` (same bytes, same sha256)."""
    import json

    from hlm_cli.outputs import runinfo

    info = json.loads(Path(run_json).read_text(encoding="utf-8"))
    file = str(Path(data_file).resolve())
    runinfo.update(run_json, data={**info.get("data", {}), "file": file}, config={**info.get("config", {}), "data": file})


def _call_text(name: str, data: Any, formula: str, **kw: Any) -> str:
    """run.json's ``command``: the call as Python writes it."""
    shown = "<DataFrame>" if _is_frame(data) else repr(str(data))
    args = [shown, repr(formula)] + [f"{k}={v!r}" for k, v in kw.items() if v is not None]
    return f"hlm.{name}({', '.join(args)})"


# --------------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------------


class Fit:
    """One fitted model: a run directory and the methods of the commands that read it.

    Made by :func:`fit` or :func:`load`; not built directly.

    Attributes
    ----------
    run_dir : Path
        The run directory (``summary.csv``, ``posterior.nc``, ``run.json``); a temporary one
        for ``fit(..., out=None)`` until :meth:`save`.
    result : hlm_cli.workflows.fit.FitResult or None
        What :func:`fit` returned in this process (timings, compile mode); None after
        :func:`load`.
    """

    def __init__(self, run_dir: Path, *, data: Path | None = None, owner: tempfile.TemporaryDirectory | None = None,
                 result: Any = None) -> None:
        self._run_dir = Path(run_dir)
        self._data = Path(data) if data is not None else None  # a moved data file (load(..., data=))
        self._owner = owner  # keeps a temporary run directory / data file alive as long as this Fit
        self.result = result
        self._info: dict | None = None
        self._tree = None

    # -- the run's files ----------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self._run_dir

    @property
    def temporary(self) -> bool:
        """Whether the run directory is a temporary one (``out=None``, not yet saved)."""
        return self._owner is not None and _inside(self._run_dir, Path(self._owner.name))

    @property
    def info(self) -> dict:
        """run.json, as a dict."""
        if self._info is None:
            from hlm_cli.outputs import runinfo

            self._info = runinfo.read(self._run_dir)
        return self._info

    @property
    def formula(self) -> str:
        """The model formula."""
        return str(self.info.get("formula", ""))

    @property
    def data_file(self) -> Path:
        """The data file the model was fitted to (its sha256 is in run.json)."""
        return self._data if self._data is not None else Path(self.info["data"]["file"])

    def summary(self) -> pd.DataFrame:
        """The parameter table (``summary.csv``) as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            One row per parameter: ``parameter``, ``kind`` (population, group_sd, group_cor,
            family, group_effect), ``group``, ``mean``, ``sd``, the 94% HDI and ETI bounds,
            MCSE, bulk/tail ESS and R-hat.
        """
        import pandas as pd

        return pd.read_csv(self._run_dir / "summary.csv", keep_default_na=False, na_values=[""])

    @property
    def posterior(self):
        """The posterior as an ``xarray.DataTree`` (``posterior.nc``, loaded once)."""
        if self._tree is None:
            from hlm_cli.workflows.runs import open_tree

            self._tree = open_tree(self._run_dir)
        return self._tree

    @property
    def diagnostics(self) -> list[dict]:
        """The convergence findings of run.json: dicts with ``code``, ``message``, ``remedy``,
        ``params``, ``value`` and ``severity`` (``"warning"`` or ``"note"``)."""
        return list((self.info.get("diagnostics") or {}).get("findings") or [])

    @property
    def ok(self) -> bool:
        """True when no diagnostic finding is a warning."""
        return not any(f.get("severity") == "warning" for f in self.diagnostics)

    # -- the commands that read a run ----------------------------------------------------------

    def loo(self, *, criterion: str = "loo", fix: str = "auto", kfold: int | None = None, group: str | None = None,
            seed: int = 0, on_progress: Callable[[str], None] | None = None):
        """This model's expected log predictive density (``hlm loo RUN``).

        Parameters
        ----------
        criterion : {"loo", "waic", "kfold"}
        fix : {"auto", "reloo", "kfold", "none"}
            What to do about observations with a high Pareto k (see ``hlm loo --help``).
        kfold, group, seed, on_progress
            As :func:`hlm_cli.workflows.loo.compare_runs`.

        Returns
        -------
        hlm_cli.workflows.loo.ModelLoo
            ``elpd``, ``se``, ``p`` (effective parameters), ``ktable`` (Pareto k counts),
            ``warnings``.
        """
        from hlm_cli.workflows.loo import compare_runs

        res = compare_runs([self._run_dir], criterion=criterion, fix=fix, kfold=kfold, group=group, seed=seed,
                           on_progress=on_progress, data=self._data)
        return res.models[0]

    def predict(self, newdata, *, kind: str = "mean", interval: float = 0.94, seed: int = 0) -> pd.DataFrame:
        """Predict new rows (``hlm predict``).

        Parameters
        ----------
        newdata : pandas.DataFrame or path
            The model's predictor and grouping columns (the response is not needed). Levels of
            a grouping factor the fit did not see get effects drawn from the group-level
            distribution.
        kind : {"mean", "response"}
            The expected response, or a new observation (adds the family's noise).
        interval : float
            Probability of the equal-tailed interval (``lower``, ``upper``).
        seed : int

        Returns
        -------
        pandas.DataFrame
            The rows of ``newdata`` with ``mean``, ``sd``, ``lower`` and ``upper``.
        """
        from hlm_cli.workflows.predict import run_predict

        with tempfile.TemporaryDirectory(prefix="hlm-predict-") as tmp:
            src = _write_frame(newdata, Path(tmp) / "newdata.csv", "newdata") if _is_frame(newdata) else _as_path(newdata, "newdata")
            res = run_predict(self._run_dir, src, out=Path(tmp) / "predict.csv", kind=kind, interval=interval,
                              seed=seed, data=self._data)
        return res.table

    def contrast(self, term: str, by: str | None = None, *, contrast: tuple[str, str] | None = None,
                 prob: float = 0.94, rope: tuple[float, float] | None = None, rope_on: str = "difference",
                 new_group: bool = False, seed: int = 0) -> pd.DataFrame:
        """Differences in the expected response between levels of ``term`` (``hlm contrast``).

        Parameters
        ----------
        term : str
            A predictor column (a factor: every pair of levels, or ``contrast=(FROM, TO)``;
            a number: the effect of a unit increase).
        by : str, optional
            A column: one contrast per level of it.
        contrast : (str, str), optional
            Only ``TO - FROM``.
        prob : float
            HDI probability.
        rope : (float, float), optional
            Region of practical equivalence: adds the probability inside it.
        rope_on : {"difference", "effect_size"}
        new_group, seed
            As ``hlm contrast --new-group --seed``.

        Returns
        -------
        pandas.DataFrame
            One row per contrast (and level of ``by``).
        """
        from hlm_cli.workflows.contrast import ContrastSpec, run_contrast

        with tempfile.TemporaryDirectory(prefix="hlm-contrast-") as tmp:
            spec = ContrastSpec(run_dir=self._run_dir, term=term, by=by, contrast=contrast, rope=rope, rope_on=rope_on,
                                prob=prob, out=Path(tmp) / "contrast.csv", new_group=new_group, data=self._data,
                                plot=False, seed=seed)
            return run_contrast(spec).table

    def hypothesis(self, *hypotheses: str, prob: float = 0.94) -> pd.DataFrame:
        """Test statements about the parameters (``hlm hypothesis``).

        Parameters
        ----------
        *hypotheses : str
            e.g. ``"Intercept < 0"``, ``"1|gene_sigma > 1|cell_line_sigma"``.
        prob : float
            HDI probability.

        Returns
        -------
        pandas.DataFrame
            One row per hypothesis: estimate, error, HDI, posterior probability (and a
            Bayes factor for ``=`` when the fit sampled the prior).
        """
        from hlm_cli.workflows.hypothesis import run_hypothesis

        with tempfile.TemporaryDirectory(prefix="hlm-hypothesis-") as tmp:
            return run_hypothesis(self._run_dir, list(hypotheses), prob=prob, out=Path(tmp) / "hypothesis.csv").table

    def pooling(self, factor: str | None = None) -> pd.DataFrame:
        """No, complete and partial pooling estimates of each level of ``factor`` (``hlm pooling``).

        Parameters
        ----------
        factor : str, optional
            A grouping factor of the formula [default: the one with most levels].

        Returns
        -------
        pandas.DataFrame
            ``level``, ``n``, ``no_pooling``, ``complete_pooling``, ``partial_pooling``.
        """
        from hlm_cli.workflows.pooling import compare
        from hlm_cli.workflows.runs import load_run

        return compare(load_run(self._run_dir, data=self._data), factor=factor).table

    def varpart(self, *, ci: float = 0.95) -> pd.DataFrame:
        """Variance partition (``hlm varpart``): the fraction of the latent-scale variance due to
        each grouping factor, the population-level terms and the residual, per posterior draw.

        Parameters
        ----------
        ci : float
            Width of each fraction's equal-tailed interval.

        Returns
        -------
        pandas.DataFrame
            ``component`` (each grouping factor, ``fixed``, ``residual``), ``mean``, ``lower``,
            ``upper`` (the fraction) and ``variance`` (posterior mean of the component's
            variance). The fractions of each draw sum to one.
        """
        from hlm_cli.outputs.varpart import fractions
        from hlm_cli.workflows.runs import load_run

        ctx = load_run(self._run_dir, data=self._data)
        return fractions(ctx.tree, ctx.built, ci)

    def sensitivity(self) -> pd.DataFrame:
        """Power-scaling prior and likelihood sensitivity of each parameter (``hlm sensitivity``).

        Returns
        -------
        pandas.DataFrame
            ``parameter``, ``prior``, ``likelihood`` (above 0.05: sensitive) and ``diagnosis``
            (``prior-data conflict``, ``strong prior / weak likelihood`` or empty), as the
            run's sensitivity.csv.
        """
        from hlm_cli.workflows.sensitivity import run_sensitivity

        return run_sensitivity(self._run_dir, write=False).table

    def report(self, path: str | os.PathLike | None = None, *, color_by: str | None = None) -> Path:
        """Draw the figures and write the self-contained HTML report (``hlm report``).

        Parameters
        ----------
        path : path, optional
            Where to put a copy of the page; it is always written as ``RUN_DIR/report.html``
            (with the figures under ``RUN_DIR/plots/``).
        color_by : str, optional
            Column colouring the predicted-vs-observed points.

        Returns
        -------
        Path
            The page written (``path`` when given).
        """
        from hlm_cli.workflows.report import run_report

        page = run_report(self._run_dir, color_by=color_by, data=self._data)
        if path is None:
            return Path(page)
        dest = Path(path)
        if dest.is_dir():
            raise OutputError(f"report path {str(dest)!r} is a directory", hint="give a file name, e.g. report.html")
        shutil.copyfile(page, dest)
        return dest

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        """Copy the run directory to ``path`` (the same contract as ``hlm fit --out``).

        A fit of a DataFrame also writes its data as ``PATH.data.csv`` beside the directory
        and records that file in the copy's run.json, so the saved run is complete on its
        own: ``hlm.load(path)`` and the ``hlm`` commands work on it after this process ends.

        Parameters
        ----------
        path : path
            A directory that does not exist yet or is empty.
        force : bool
            Replace an earlier hlm run directory there (and its ``.data.csv``), as ``--force``.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        OutputError
            ``path`` is not empty (without ``force``), is not an hlm run directory, or
            cannot be written.
        """
        from hlm_cli.outputs import rundir

        dest = Path(path)
        if dest.exists() and dest.resolve() == self._run_dir.resolve():
            return dest
        data_file = self.data_file
        temp_data = self._owner is not None and _inside(data_file, Path(self._owner.name))
        rundir.check_out(dest, force=force, protect=(data_file,))
        if temp_data:
            _check_data_dest(_data_beside(dest), data_file, force=force)
        with rundir.staged(dest, force=force, protect=(data_file,)) as stage:
            for item in self._run_dir.iterdir():
                if item.is_dir():
                    shutil.copytree(item, stage / item.name)
                else:
                    shutil.copy2(item, stage / item.name)
            if temp_data:
                target = _data_beside(dest)
                shutil.copyfile(data_file, target)
                _point_at_data(stage / "run.json", target)
        return dest

    # -- display --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "temporary" if self.temporary else str(self._run_dir)
        try:
            status = "ok" if self.ok else f"{sum(f.get('severity') == 'warning' for f in self.diagnostics)} warning(s)"
            return f"<hlm.Fit {self.formula!r} ({state}; diagnostics: {status})>"
        except HlmError:
            return f"<hlm.Fit ({state})>"

    def _repr_html_(self) -> str:
        """The summary table (without group-level effects) and the diagnostics, as plain HTML."""
        import csv
        import html

        e = html.escape
        with open(self._run_dir / "summary.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        cols = [c for c in (rows[0].keys() if rows else []) if c not in ("kind", "group", "mcse_sd")]
        shown = [r for r in rows if r.get("kind") != "group_effect"]
        hidden = len(rows) - len(shown)

        def cell(v: str) -> str:
            try:
                return f"{float(v):.4g}"
            except ValueError:
                return e(v)

        head = "".join(f"<th>{e(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in shown)
        findings = self.diagnostics
        if not findings:
            diag = "<p><b>diagnostics:</b> ok</p>"
        else:
            items = "".join(f"<li><b>{e(str(f.get('severity', '')))}</b>: {e(str(f.get('message', '')))}"
                            + (f" <i>({e(str(f['remedy']))})</i>" if f.get("remedy") else "") + "</li>" for f in findings)
            diag = f"<p><b>diagnostics:</b> {'ok' if self.ok else 'warnings'}</p><ul>{items}</ul>"
        note = f"<p><i>{hidden} group-level effects not shown (fit.summary() has them)</i></p>" if hidden else ""
        where = "temporary run directory" if self.temporary else e(str(self._run_dir))
        return (f"<div class='hlm-fit'><p><b>hlm fit</b> <code>{e(self.formula)}</code> ({where})</p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}{diag}</div>")


# --------------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------------


def fit(data, formula: str, *, family: str = "gaussian", priors: Mapping[str, str] | None = None,
        draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int | None = None,
        out: str | os.PathLike | None = None, force: bool = False, plots: bool = False,
        on_progress: Callable[[str], None] | None = None, **options: Any) -> Fit:
    """Fit a Bayesian mixed model (``hlm fit``).

    Parameters
    ----------
    data : pandas.DataFrame or path
        The data: a DataFrame, or a file (``.csv``, ``.tsv``, ``.txt``, compressed, or
        ``.parquet``/``.feather``). A DataFrame is written as CSV (without its index) to a
        file the run records (see :meth:`Fit.save`).
    formula : str
        An lme4 formula, e.g. ``"logfc ~ 1 + (1|gene) + (1|cell_line)"``.
    family : str
        ``gaussian``, ``t``, ``binomial``, ``poisson``, ``negbinomial``, ``gamma``,
        ``lognormal``, ... (``hlm fit --help`` lists them).
    priors : dict, optional
        TERM -> ``"Dist(args)"``, e.g. ``{"Intercept": "Normal(0, 5)", "sigma": "HalfNormal(1)"}``.
    draws, tune, chains : int
        Posterior draws and warm-up iterations per chain, and the number of chains.
    seed : int, optional
        Sampler seed [default: hlm's fixed default, so a fit is reproducible].
    out : path, optional
        The run directory to create. None: a temporary one owned by the Fit (keep it with
        :meth:`Fit.save`).
    force : bool
        Replace an earlier hlm run directory at ``out``.
    plots : bool
        Also draw the figures and ``report.html`` now (:meth:`Fit.report` does it later).
    on_progress : callable, optional
        Receives the stage names (load, build, compile, sample, write).
    **options
        Any other ``hlm fit`` setting by its config name: ``categorical=["cell_line"]``,
        ``target_accept=0.95``, ``ess=400`` (docs/ess.md), ``cores=2``, ``se="sigma"``, ``sigma_formula="~ group"``, ``link="probit"``,
        ``zi_formula="~ mined"`` (``hu_formula``),
        ``sep=";"``, ``prior_predictive=True``, ``parameterization="noncentered"``, ...

    Returns
    -------
    Fit

    Raises
    ------
    HlmError
        ``ConfigError``, ``PriorError``, ``InputError``, ``FormulaError``, ``OutputError`` or
        ``SamplingError``, with ``.hint``: everything cheap is checked before sampling.

    Notes
    -----
    Within one process a second fit of the same structure (formula, family, priors, data
    shape) reuses the compiled model; the first compiles it (or finds it in hlm's disk
    cache). No background process is started.
    """
    from hlm_cli.spec import load_fit_spec
    from hlm_cli.workflows.fit import run_fit

    if not isinstance(formula, str):
        raise ConfigError(f"formula must be text (got {type(formula).__name__})", hint='e.g. "logfc ~ 1 + (1|gene)"')
    frame = _is_frame(data)
    path = None if frame else _as_path(data, "data")
    prior_list = _prior_flags(priors)
    owner = tempfile.TemporaryDirectory(prefix="hlm-fit-") if (frame or out is None) else None
    try:
        if frame:
            path = _write_frame(data, Path(owner.name) / "dataframe.csv", "data")
        run_dir = Path(out) if out is not None else Path(owner.name) / "run"
        if frame and out is not None:  # the data will live beside the run directory: refuse a clash first
            _check_data_dest(_data_beside(run_dir), path, force=force)
        command = _call_text("fit", data, formula, family=family, draws=draws, tune=tune, chains=chains, seed=seed,
                             out=None if out is None else str(out))
        spec = load_fit_spec(None, data=path, formula=formula, out=run_dir, family=family, priors=prior_list,
                             draws=draws, tune=tune, chains=chains, seed=seed, force=force, plots=plots, quiet=True,
                             command=command, **options)
        result = run_fit(spec, on_progress=on_progress, quick=False)
        if frame and out is not None:
            target = _data_beside(run_dir)
            shutil.copyfile(path, target)
            _point_at_data(run_dir / "run.json", target)
            owner.cleanup()
            owner = None
    except BaseException:
        if owner is not None:
            owner.cleanup()
        raise
    return Fit(run_dir, owner=owner, result=result)


def load(path: str | os.PathLike, *, data: str | os.PathLike | None = None) -> Fit:
    """Open a run directory written by ``hlm fit --out``, :func:`fit` or :meth:`Fit.save`.

    Parameters
    ----------
    path : path
        The run directory.
    data : path, optional
        The data file, if it moved since the fit (its sha256 must match run.json's).

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Not a run directory, or a damaged or newer run.json.
    """
    from hlm_cli.outputs import runinfo

    run_dir = _as_path(path, "path")
    if not (run_dir / "run.json").is_file() or not (run_dir / "posterior.nc").is_file():
        raise InputError(f"{str(run_dir)!r} is not an hlm run directory (no run.json/posterior.nc)",
                         hint="give the out= directory of hlm.fit, Fit.save or 'hlm fit --out'")
    runinfo.read(run_dir)  # a damaged or newer run.json is refused here, not at first use
    if data is not None and not Path(data).is_file():
        raise InputError(f"data file {str(data)!r} does not exist", hint="give the moved data file of this run")
    return Fit(run_dir, data=None if data is None else Path(data))


def compare(*fits: Fit, names: Iterable[str] | None = None, criterion: str = "loo", fix: str = "auto",
            kfold: int | None = None, group: str | None = None, force: bool = False, seed: int = 0) -> pd.DataFrame:
    """Compare two or more fits of the same data by PSIS-LOO (``hlm loo RUN1 RUN2 ...``).

    Parameters
    ----------
    *fits : Fit
    names : list of str, optional
        Row labels [default: ``m1``, ``m2``, ... ; the run directory names when every fit
        is saved under a distinct name].
    criterion, fix, kfold, group, seed
        As :meth:`Fit.loo`.
    force : bool
        Compare fits of different data (with a note) instead of refusing.

    Returns
    -------
    pandas.DataFrame
        Best model first: ``elpd``, ``se``, ``elpd_diff``, ``dse`` (SE of the difference),
        ``p``, ``weight`` and the like, as ``hlm loo`` writes to ``compare.csv``.
    """
    from hlm_cli.workflows.loo import compare_runs

    if len(fits) < 2:
        raise ConfigError(f"compare needs two or more fits (got {len(fits)})", hint="e.g. hlm.compare(fit_a, fit_b)")
    if bad := [type(f).__name__ for f in fits if not isinstance(f, Fit)]:
        raise ConfigError(f"compare takes Fit objects (got {bad[0]})", hint="pass what hlm.fit or hlm.load returned")
    labels = list(names) if names is not None else None
    if labels is not None and (len(labels) != len(fits) or len(set(labels)) != len(labels)):
        raise ConfigError(f"names must give {len(fits)} distinct labels (got {labels!r})", hint='e.g. names=["m1", "m2"]')
    if labels is None:
        dirs = [f.run_dir.name for f in fits]
        permanent = not any(f.temporary for f in fits) and len(set(dirs)) == len(dirs)
        labels = dirs if permanent else [f"m{i}" for i in range(1, len(fits) + 1)]
    moved = [f._data for f in fits if f._data is not None]
    res = compare_runs([f.run_dir for f in fits], criterion=criterion, fix=fix, kfold=kfold, group=group, force=force,
                       seed=seed, data=moved[0] if moved else None)
    rename = {m.name: label for m, label in zip(res.models, labels, strict=True)}
    table = res.table.rename(index=rename)
    table.index.name = "model"
    table.attrs["notes"] = list(res.notes)
    return table


def batch(inputs: str | os.PathLike | Iterable[str | os.PathLike], formula: str | Iterable[str], out: str | os.PathLike,
          *, priors: Mapping[str, str] | None = None, workers: int | None = None, scheduler: str | None = None,
          manifest: str | os.PathLike | None = None, rerun_failed: bool = False, force: bool = False,
          strict: bool = False, compare: bool = True, on_progress: Callable | None = None, share: bool = False,
          by: str | None = None, lfsr: float | None = None, full_features: bool = False, **options: Any):
    """Fit one model to many inputs (``hlm batch``), resuming where a previous batch stopped.

    Parameters
    ----------
    inputs : path, glob or list of them
        Files, globs (``"data/*.csv"``) or directories (their ``*.csv``, ``*.tsv``, ``*.txt``).
    formula : str or list of str
        One formula, or several (each input gets one run per formula, and a LOO comparison).
    out : path
        The batch directory: one run directory per input, ``batch_status.csv``,
        ``batch_summary.csv`` and ``batch_report.html``.
    priors : dict, optional
        As :func:`fit`.
    workers, scheduler, manifest, rerun_failed, force, strict, compare
        As ``hlm batch --workers --scheduler --manifest --rerun-failed --force --strict
        --no-compare``.
    on_progress : callable, optional
        Receives a :class:`hlm_cli.workflows.batch.BatchProgress` whenever a fit starts or ends.
    share : bool
        ``hlm batch --share``: fit every input, learn shared priors for sigma, the group SDs
        and the slopes from those fits (``out/shared_priors.json``), refit every input with
        them. The result then also has ``shared`` (the
        :class:`hlm_cli.workflows.share.SharedResult`).
    by : str, optional
        ``hlm batch --by``: split ONE table (a path, or a pandas DataFrame as ``inputs``) by this
        feature column and fit every feature (docs/screens.md).
    lfsr : float, optional
        With ``by``: select the features whose local false sign rate is below this.
    full_features : bool
        With ``by``: full run directories (figures, report.html, log-likelihood) per feature.
    **options
        Settings of every fit, as :func:`fit` takes them (``draws=``, ``chains=``,
        ``family=``, ``categorical=``, ``ci=``, ...).

    Returns
    -------
    hlm_cli.workflows.batch.BatchResult or hlm_cli.workflows.screen.ScreenResult
        ``status`` (a DataFrame: one row per input and formula), ``status_path``,
        ``summary_path``, ``succeeded``. With ``by``: a ScreenResult, whose ``features``,
        ``varpart`` and ``selection`` are the DataFrames of features.csv, varpart.csv and the
        selection per term, and ``batch`` the BatchResult.

    Raises
    ------
    HlmError
        Before any fit (bad inputs, settings or ``out``). A failure of a single input is
        recorded in ``status``, not raised.
    """
    import pandas as _pd

    from hlm_cli.spec import check_batch_options, load_batch_specs
    from hlm_cli.workflows.batch import BatchSpec, run_batch

    frame = None
    if by is not None and isinstance(inputs, _pd.DataFrame):
        frame, inputs = inputs, ["<DataFrame>"]
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [str(p) for p in inputs]
    from hlm_cli.workflows.screen import check_screen_options

    check_screen_options(by=by, lfsr=lfsr, full_features=full_features, inputs=inputs,
                         manifest=None if manifest is None else Path(manifest))
    formulas = [formula] if isinstance(formula, str) else list(formula)
    out_path = _as_path(out, "out")
    check_batch_options(out=out_path, inputs=inputs, manifest=None if manifest is None else Path(manifest),
                        workers=workers, scheduler=scheduler)
    specs = load_batch_specs(None, out=out_path, formulas=formulas, priors=_prior_flags(priors), strict=strict,
                             plots=options.pop("plots", False), **options)
    spec = BatchSpec(inputs=inputs, out=out_path, specs=specs, manifest=None if manifest is None else Path(manifest),
                     workers=workers, scheduler=scheduler, rerun_failed=rerun_failed, force=force, strict=strict,
                     compare=compare, command=f"hlm.batch({inputs!r}, {formulas!r}, {str(out)!r}" + (f", by={by!r})" if by else ")"),
                     share=share)
    if by is not None:
        from hlm_cli.workflows.screen import run_screen

        table = None
        if frame is not None:
            from hlm_cli.data import Table

            table = Table(frame=frame.copy(), source=Path("DataFrame"), sha256="", rows_read=len(frame), sep=None)
        return run_screen(spec, by, lfsr=lfsr, full=full_features, on_progress=on_progress, table=table)
    if share:
        from hlm_cli.workflows.share import run_shared_batch

        shared = run_shared_batch(spec, on_progress=on_progress)
        shared.result.shared = shared
        return shared.result
    return run_batch(spec, on_progress=on_progress)


def sbc(data, formula: str | None = None, out: str | os.PathLike | None = None, *, sims: int = 200,
        priors: Mapping[str, str] | None = None, simulate_priors: Mapping[str, str] | None = None,
        workers: int | None = None, alpha: float = 0.05, force: bool = False, on_progress: Callable | None = None,
        **options: Any):
    """Simulation-based calibration on the design of ``data`` (``hlm sbc``; see docs/sbc.md).

    Parameters
    ----------
    data : path, DataFrame or Fit
        The data whose design is kept (a DataFrame is written beside ``out`` as OUT.data.csv), or a
        :class:`Fit` / run directory whose settings are reused (then no ``formula``).
    formula : str, optional
        The model, as for :func:`fit`.
    out : path, optional
        Directory for sbc_ranks.csv, sbc_summary.csv, sbc_ecdf.png, sbc_report.html; for a
        :class:`Fit` or run directory it defaults to RUN/sbc (then ``hlm report RUN`` shows it).
    sims : int
        Number of simulations.
    priors : dict, optional
        As :func:`fit`; the generator and every refit use the same priors.
    simulate_priors : dict, optional
        ``{"sigma": "HalfNormal(4)"}``: priors of the generator only (a deliberate mismatch).
    workers, alpha, force
        As ``hlm sbc --workers --alpha --force``.
    **options
        Model and sampler settings (``draws=``, ``tune=``, ``chains=``, ``family=``, ``seed=``...);
        draws, tune and chains default to 500, 500 and 2.

    Returns
    -------
    hlm_cli.workflows.sbc.SbcResult
        ``summary`` (DataFrame, one row per quantity with its ``verdict``), ``ranks``,
        ``passed``, ``n_divergent``, ``files``.
    """
    from hlm_cli.workflows.sbc import SbcSpec, check_options, default_out, fit_spec_for_sbc, run_sbc

    if isinstance(data, Fit):
        data = data.run_dir
    if out is None and not _is_frame(data):
        out = default_out(_as_path(data, "data"), None)  # a fitted run: RUN/sbc
    if out is None:
        raise ConfigError("hlm.sbc needs out=", hint="e.g. hlm.sbc(data, formula, out='results/sbc'); a Fit or run directory defaults to RUN/sbc")
    out_path = _as_path(out, "out")
    if _is_frame(data):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        data = _write_frame(data, out_path.parent / f"{out_path.name}{DATA_SUFFIX}", "data")
    data_path = _as_path(data, "data")
    check_options(data=data_path, out=out_path, formula=formula, sims=sims, workers=workers, alpha=alpha, config=None)
    fit_spec = fit_spec_for_sbc(data_path, None, out=out_path, formula=formula, priors=_prior_flags(priors),
                                defaults={"draws": 500, "tune": 500, "chains": 2},
                                cores=1 if (workers or 2) > 1 else None, **options)
    spec = SbcSpec(fit=fit_spec, out=out_path, sims=sims, simulate_priors=dict(simulate_priors or {}), workers=workers,
                   force=force, alpha=alpha, command=f"hlm.sbc({str(data_path)!r}, {formula!r}, {str(out)!r}, sims={sims})")
    return run_sbc(spec, on_progress=on_progress)
