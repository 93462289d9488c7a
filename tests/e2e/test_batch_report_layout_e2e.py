"""batch_report.html of 10 inputs x 2 models in a 1280 x 900 Chromium window: the page itself
never scrolls sideways (the table scrolls inside its box), the header row stays in view when the
box scrolls down, and the input column stays in view when it scrolls right."""

from __future__ import annotations

import html
import json
import re
import subprocess

from hlm_cli.outputs.report import write_batch_report
from tests.e2e.test_report_e2e import FLAGS, chromium  # noqa: F401 (fixture)
from tests.unit.test_batch_report_layout import make_batch

MEASURE = """<script>
window.addEventListener('load', function () {
  var wrap = document.querySelector('.tablewrap'), th = wrap.querySelector('thead th'),
      first = wrap.querySelector('tbody td'), r = wrap.getBoundingClientRect();
  var out = {page: document.documentElement.scrollWidth, inner: window.innerWidth, right: r.right,
             table: wrap.scrollWidth, box: wrap.clientWidth, tall: wrap.scrollHeight > wrap.clientHeight};
  var top0 = th.getBoundingClientRect().top, left0 = first.getBoundingClientRect().left;
  wrap.scrollTop = 400; wrap.scrollLeft = 600;
  out.header_moved = th.getBoundingClientRect().top - top0;
  out.input_moved = first.getBoundingClientRect().left - left0;
  var pre = document.createElement('pre'); pre.id = '__m'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_batch_report_fits_1280px(chromium, tmp_path):  # noqa: F811
    page = write_batch_report(make_batch(tmp_path / "batch"))
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("<head>", "<head>" + MEASURE, 1))
    proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900",
                           "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__m">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    out = json.loads(html.unescape(m.group(1)))
    assert out["inner"] == 1280
    assert out["page"] <= 1280, out  # no sideways scrolling of the page
    assert out["right"] <= 1280, out
    assert out["tall"], out  # 20 rows: the box scrolls down ...
    assert abs(out["header_moved"]) < 1, out  # ... with the header row in view
    if out["table"] > out["box"]:  # and, if it scrolls right, with the input column in view
        assert abs(out["input_moved"]) < 1, out
