"""Write validation/calibration/data/rich.csv: the data-rich design of calibration.md's
centered cells (8 levels x 40 rows, between-group SD 1, residual SD 0.3; seed 7).

    python3 validation/calibration/make_rich.py
"""

import random
from pathlib import Path

random.seed(7)
rows = ["g,x,y_real"]
b = [random.gauss(0, 1.0) for _ in range(8)]
for gi in range(8):
    for _ in range(40):
        x = random.gauss(0, 1)
        rows.append(f"g{gi},{x:.4f},{1 + 0.5 * x + b[gi] + random.gauss(0, 0.3):.4f}")
(Path(__file__).parent / "data" / "rich.csv").write_text("\n".join(rows) + "\n")
