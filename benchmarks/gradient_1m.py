"""Cost of one gradient of the log density at a million rows: rows against cross-products.

    .venv/bin/python benchmarks/gradient_1m.py [--data DIR/screen.csv] [--repeats 30]

Builds ``logfc ~ 1 + (1|gene) + (1|cell_line)`` on a screen written by benchmarks/screen_1m.py
(``--drop 0.1`` there for an incomplete one) twice, with ``HLM_SUFFSTAT=off`` (one density term
per row) and ``on`` (hlm_cli/model/suffstat.py), compiles ``model.compile_dlogp`` with
PyTensor's numba backend (what nutpie runs) and prints the median milliseconds per gradient
over ``--repeats`` calls, on one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "screen_1m_out" / "screen.csv")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    import pandas as pd

    from hlm_cli.formula import parse
    from hlm_cli.formula.design import build_design
    from hlm_cli.model.build import build_model
    from hlm_cli.model.families import get_family

    df = pd.read_csv(args.data)
    design = build_design(parse("logfc ~ 1 + (1|gene) + (1|cell_line)", list(df.columns)), df)
    print(f"{args.data}: {len(df):,} rows, load average {os.getloadavg()[0]:.2f}")
    for mode in ("off", "on"):
        os.environ["HLM_SUFFSTAT"] = mode
        built = build_model(design, get_family("gaussian"))
        fn = built.model.compile_dlogp(mode="NUMBA")
        point = built.model.initial_point()
        for _ in range(3):
            fn(point)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn(point)
            times.append(time.perf_counter() - t)
        print(f"HLM_SUFFSTAT={mode:3s} likelihood={built.likelihood:15s} {statistics.median(times) * 1e3:8.3f} ms per gradient")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
