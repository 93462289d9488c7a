"""``OUT/report.html``: one self-contained page per fit, and ``batch_report.html`` per batch.

The page needs nothing but a browser: figures are embedded as base64 PNG, styles are inline
and there is no script or network access (the batch page carries ~20 lines of inline
JavaScript to sort its table). It shows the model as written and as fitted (formula,
family, link, every prior actually used), the data (rows used and dropped, groups and their
sizes), the diagnostics with what each check means and the remedy, the brms-style summary
tables, and every figure with a one-sentence caption saying how to read it.

plan
    which figures, in which order, with which captions; the jobs that draw them
    (:mod:`hlm_cli.outputs.figures`).
html
    the pages as HTML strings.
page
    reading a run directory, drawing, rendering and writing the pages; run.json's record;
    the figure helper process of ``hlm fit`` (:func:`start_helper`).
"""

from hlm_cli.outputs.report.html import render_html
from hlm_cli.outputs.report.page import (
           BATCH_REPORT_NAME,
           REPORT_NAME,
           check_color_by,
           data_columns,
           start_helper,
           write_batch_report,
           write_report,
)
from hlm_cli.outputs.report.plan import CAPTIONS, Figure

__all__ = ["BATCH_REPORT_NAME", "CAPTIONS", "Figure", "REPORT_NAME", "check_color_by", "data_columns", "render_html",
           "start_helper", "write_batch_report", "write_report"]
