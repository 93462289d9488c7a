"""The root Typer app and the one error boundary, :func:`main`.

Heavy imports (pymc, bambi, arviz) happen inside command bodies, so ``hlm --help`` and
argument errors stay instant.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hlm_cli import __version__
from hlm_cli.cli import batch as batch_cmd
from hlm_cli.cli import contrast as contrast_cmd
from hlm_cli.cli import fit as fit_cmd
from hlm_cli.cli import hypothesis as hypothesis_cmd
from hlm_cli.cli import loo as loo_cmd
from hlm_cli.cli import pooling as pooling_cmd
from hlm_cli.cli import predict as predict_cmd
from hlm_cli.cli import priors as priors_cmd
from hlm_cli.cli import report as report_cmd
from hlm_cli.cli import sbc as sbc_cmd
from hlm_cli.cli import sensitivity as sensitivity_cmd
from hlm_cli.cli import summary as summary_cmd
from hlm_cli.cli import varpart as varpart_cmd

app = typer.Typer(
    name="hlm",
    help=(
        "Bayesian hierarchical (mixed) models from lme4-style formulas.\n\n"
        "Example: hlm fit sample_data/cell_lines.csv --formula \"logfc ~ 1 + (1|gene) + (1|cell_line)\" --out results/ko"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hlm {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for unexpected errors.")] = False,
) -> None:
    """Bayesian hierarchical (mixed) models from lme4-style formulas."""
    _state["debug"] = debug


# Every command, registered by name in the order ``hlm --help`` lists them. The command
# modules import only typer and the standard library at the top (their work is imported in
# the body), so this stays instant; a command that fails to import fails here, loudly.
app.command("fit", no_args_is_help=True)(fit_cmd.fit)
app.command("summary", no_args_is_help=True)(summary_cmd.summary)
app.command("priors", no_args_is_help=True)(priors_cmd.priors)
app.command("loo", no_args_is_help=True)(loo_cmd.loo)
app.command("batch", no_args_is_help=True)(batch_cmd.batch)
app.command("report", no_args_is_help=True)(report_cmd.report)
app.command("contrast", no_args_is_help=True)(contrast_cmd.contrast)
app.command("hypothesis", no_args_is_help=True)(hypothesis_cmd.hypothesis)
app.command("predict", no_args_is_help=True)(predict_cmd.predict)
app.command("pooling", no_args_is_help=True)(pooling_cmd.pooling)
app.command("varpart", no_args_is_help=True)(varpart_cmd.varpart)
app.command("sensitivity", no_args_is_help=True)(sensitivity_cmd.sensitivity)
app.command("sbc", no_args_is_help=True)(sbc_cmd.sbc)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; the only place errors become messages."""
    from hlm_cli.errors import ExitCode, HlmError

    args = list(sys.argv[1:] if argv is None else argv)
    _state["debug"] = "--debug" in args
    if not _state["debug"]:  # library warnings (BLAS, numba) are noise to a user; --debug shows them
        import warnings

        warnings.filterwarnings("ignore")
    try:
        rc = app(args=args, prog_name="hlm", standalone_mode=False)
        rc = int(rc) if isinstance(rc, int) else 0
        if rc == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a silent Exit(130)
            from hlm_cli.cli import render

            if not render.said_interrupted():
                render.error("interrupted", "nothing was written for the unfinished run")
        return rc
    except HlmError as err:
        from hlm_cli.cli import render

        render.error(str(err), err.hint)
        return int(err.exit_code)
    except typer.Exit as ex:
        return int(ex.exit_code)
    except KeyboardInterrupt:
        from hlm_cli.cli import render

        render.error("interrupted", "nothing was written for the unfinished run")
        return int(ExitCode.INTERRUPTED)
    except Exception as err:  # click usage errors and bugs
        kind = type(err).__name__
        if kind == "Abort":  # Ctrl-C inside click
            from hlm_cli.cli import render

            render.error("interrupted", "nothing was written for the unfinished run")
            return int(ExitCode.INTERRUPTED)
        if hasattr(err, "show") and hasattr(err, "exit_code"):  # click/typer usage errors
            err.show()
            return int(ExitCode.USAGE)
        if _state["debug"]:
            raise
        from hlm_cli.cli import render

        first = str(err).splitlines()[0] if str(err) else ""
        render.error(f"internal error ({type(err).__name__}: {first}); this is a bug in hlm", "rerun with --debug for the traceback, and report it")
        return int(ExitCode.BUG)
    except BaseException as err:  # pyo3's PanicException (nutpie's Rust side) is a BaseException
        if isinstance(err, (SystemExit, GeneratorExit)) or _state["debug"]:
            raise
        from hlm_cli.cli import render

        first = str(err).splitlines()[0] if str(err) else ""
        render.error(f"internal error in a compiled library ({type(err).__name__}: {first}); this is a bug in hlm",
                     "rerun with --debug for the traceback, and report it")
        return int(ExitCode.BUG)


def run() -> None:  # console-script entry point
    code = main()
    # Everything is written and renamed into place by now. Interpreter teardown (freeing
    # PyTensor/numba objects) costs 0.5-3 s per run and does nothing for the user, so leave
    # at once (benchmarks/compile_cache/FINDINGS.md).
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    quick = sys.modules.get("hlm_cli.sampling.quick")
    if code == 0 and quick is not None and quick.pending():  # never after a failed or interrupted command
        try:  # compile what the quick first fits skipped, for the next fit (detached)
            quick.start_background_fills()
        except Exception:  # noqa: BLE001 - never let the cache turn a finished run into an error
            pass
    os._exit(code)
