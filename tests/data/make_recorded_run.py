"""Write tests/data/cell_lines_run/: a small real fit that unit tests read instead of sampling.

    .venv/bin/python tests/data/make_recorded_run.py

Run it again (and commit its output) when the run directory format or the model's variable
names change: ``tests/unit`` never samples, so the tests that read a fitted run read this one.

The fit is the README's cell-line model on tests/data/cell_lines.csv (a copy of
sample_data/cell_lines.csv: 3 genes x 10 cell lines x 3 replicates), 2 chains x 200 draws,
seed 1, no plots. Machine-specific paths in run.json are replaced by names relative to
tests/data; the ``recorded_run`` fixture (tests/conftest.py) copies the directory and the CSV
to a temporary folder and points run.json at the copy, so a test may write into it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CSV = HERE / "cell_lines.csv"
RUN = HERE / "cell_lines_run"
FORMULA = "logfc ~ 1 + (1|gene) + (1|cell_line)"
KEEP = {"run.json", "posterior.nc", "summary.csv"}


def main() -> int:
    os.environ.update(HLM_QUICK_COMPILE="0", HLM_BACKGROUND_COMPILE="0")
    scratch = Path(tempfile.mkdtemp(prefix="hlm-recorded-"))
    os.environ["HLM_CACHE_DIR"] = str(scratch / "cache")  # leave the user's cache alone
    os.environ["HLM_CACHE_KEY_FILE"] = str(scratch / "cache.key")
    sys.path.insert(0, str(ROOT))
    from hlm_cli.cli.app import main as hlm

    shutil.copyfile(ROOT / "sample_data" / "cell_lines.csv", CSV)
    out = scratch / "cell_lines_run"
    code = hlm(["fit", str(CSV), "--formula", FORMULA, "--out", str(out), "--draws", "200", "--tune", "200",
                "--chains", "2", "--seed", "1", "--no-plots", "--quiet"])
    if code != 0:
        print(f"hlm fit exited {code}", file=sys.stderr)
        return code
    info = json.loads((out / "run.json").read_text())
    # relative to tests/data; the recorded_run fixture rewrites both to its copy of the CSV
    info["data"]["file"] = CSV.name
    info["config"]["data"] = CSV.name
    info["config"]["out"] = RUN.name
    info["argv"] = ["hlm", "fit", CSV.name, "--formula", FORMULA, "--out", RUN.name, "--draws", "200", "--tune",
                    "200", "--chains", "2", "--seed", "1", "--no-plots", "--quiet"]
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir()
    for name in sorted(KEEP):
        shutil.copyfile(out / name, RUN / name)
    shutil.rmtree(scratch)
    print(f"wrote {RUN.relative_to(ROOT)}: " + ", ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in sorted(RUN.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
