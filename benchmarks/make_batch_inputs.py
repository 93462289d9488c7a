"""Write inputs for the ``hlm batch`` benchmark: N cell-line screens plus broken files.

    python benchmarks/make_batch_inputs.py OUTDIR [--n 200] [--broken 3] [--truth FILE]

``gene_0001.csv`` .. ``gene_NNNN.csv`` use the simulation of ``sample_data/cell_lines.csv``
(10 cell lines x 3 genes x 3 experiments, 90 rows) with seeds 1..N, so each file is a new
draw of the true effects (``gene_0103.csv`` is ``sample_data/cell_lines.csv``, seed 103).
``--broken k`` adds the first k of: ``broken_text.csv`` (a text value in ``logfc``),
``broken_empty.csv`` (0 bytes), ``broken_missing_column.csv`` (no ``cell_line`` column).
``--truth FILE`` writes the true values (file, parameter, value); keep FILE outside
OUTDIR so that a ``*.csv`` glob over OUTDIR sees only the inputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sample_data"))
from make_sample_data import simulate_cell_lines, write_csv  # noqa: E402

BROKEN_SEED = 0  # seeds 1..N are the good files


def _broken_text(path: Path) -> None:
    data, _, _ = simulate_cell_lines(BROKEN_SEED)
    data = data.round(6).astype({"logfc": object})
    data.loc[4, "logfc"] = "#VALUE!"  # a spreadsheet error pasted into a numeric column
    write_csv(data, path)


def _broken_empty(path: Path) -> None:
    path.write_bytes(b"")


def _broken_missing_column(path: Path) -> None:
    data, _, _ = simulate_cell_lines(BROKEN_SEED)
    write_csv(data.drop(columns="cell_line"), path)


BROKEN = [
    ("broken_text.csv", _broken_text),
    ("broken_empty.csv", _broken_empty),
    ("broken_missing_column.csv", _broken_missing_column),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("outdir", type=Path, help="folder to write the CSVs into")
    parser.add_argument("--n", type=int, default=200, help="good files, seeds 1..N (200)")
    parser.add_argument(
        "--broken",
        type=int,
        default=3,
        choices=range(len(BROKEN) + 1),
        help="how many broken files to add, in the order text, empty, missing column (3)",
    )
    parser.add_argument("--truth", type=Path, help="also write the true values to this CSV")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")

    args.outdir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(args.n)))
    truths = []
    for seed in range(1, args.n + 1):
        name = f"gene_{seed:0{width}d}.csv"
        data, truth, _ = simulate_cell_lines(seed)
        write_csv(data, args.outdir / name)
        truths.append(truth.assign(file=name))
    for name, make in BROKEN[: args.broken]:
        make(args.outdir / name)
    if args.truth and truths:
        import pandas as pd

        write_csv(pd.concat(truths)[["file", "parameter", "value"]], args.truth)
    print(f"wrote {args.n} good and {args.broken} broken CSVs to {args.outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
