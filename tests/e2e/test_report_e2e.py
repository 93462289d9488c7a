"""report.html of real fits, opened in headless Chromium (Debian's ``chromium`` package).

The browser fixture installs Chromium with apt-get when it is missing and the tests run as
root; elsewhere the browser tests are skipped with a message saying how to install it.
A small script injected into a copy of the page records, after the load event, every image's
natural size and every error (console.error, uncaught exceptions, failed loads); the tests
read it back from ``--dump-dom``. A screenshot of each page is saved in the test's tmp dir.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SAMPLE

pytestmark = pytest.mark.browser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars"]
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target; window.__errors.push(String(e.message || (t && t.getAttribute && (t.getAttribute('data-file') || t.src || '').slice(0, 80)) || 'error'));
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('unhandled rejection: ' + e.reason); });
(function () { var ce = console.error; console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  %s
  var imgs = Array.prototype.map.call(document.images, function (i) { return {file: i.getAttribute('data-file'), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}; });
  var pre = document.createElement('pre'); pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors, extra: window.__extra || null});
  document.body.appendChild(pre);
});
</script>"""


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium, installed with apt-get if missing and we are root."""
    path = _find_chromium()
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        try:
            if subprocess.run(cmd, env=env, capture_output=True, timeout=900).returncode != 0:
                subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
                subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        except (OSError, subprocess.SubprocessError):
            pass
        path = _find_chromium()
    if path is None:
        pytest.skip("headless Chromium is not installed and cannot be installed here (needs root and apt-get); "
                    "install it with 'apt-get install chromium' to run the browser tests")
    return path


def browser_probe(chromium: str, page: Path, work: Path, extra_js: str = "") -> dict:
    """Open a copy of ``page`` (probe injected) and return what the probe recorded."""
    work.mkdir(parents=True, exist_ok=True)
    text = page.read_text()
    copy = page.with_name(f".probe-{page.name}")  # beside the page, so relative links still resolve
    copy.write_text(text.replace("<head>", "<head>" + PROBE % extra_js, 1))
    try:
        proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=10000",
                               "--dump-dom", copy.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        copy.unlink()
    m = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the page did not finish loading in Chromium (rc={proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(html.unescape(m.group(1)))
    result["stderr"] = proc.stderr
    return result


def screenshot(chromium: str, page: Path, out: Path, work: Path, height: int = 3000) -> Path:
    subprocess.run([chromium, *FLAGS, f"--user-data-dir={work / 'profile'}", "--run-all-compositor-stages-before-draw",
                    f"--window-size=1280,{height}", f"--screenshot={out}", page.resolve().as_uri()],
                   capture_output=True, timeout=120)
    return out


def _assert_renders(chromium: str, page: Path, tmp_path: Path) -> dict:
    n_img = len(re.findall(r"<img ", page.read_text()))
    probe = browser_probe(chromium, page, tmp_path / "chrome")
    assert probe["errors"] == [], probe["errors"]
    assert "Uncaught" not in probe["stderr"]
    assert len(probe["images"]) == n_img > 0
    broken = [i for i in probe["images"] if not i["complete"] or i["w"] < 50 or i["h"] < 50]
    assert broken == [], broken
    shot = screenshot(chromium, page, tmp_path / f"{page.parent.name}_report.png", tmp_path / "chrome")
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    return probe


def _report(run: Path) -> Path:
    from hlm_cli.cli.app import main

    assert main(["report", str(run)]) == 0
    page = run / "report.html"
    assert page.exists() and page.stat().st_size < 5_000_000
    return page


def _figures(run: Path) -> set[str]:
    return {p.stem for p in (run / "plots").glob("*.png")}


def _has_ident(run: Path) -> bool:
    info = json.loads((run / "run.json").read_text())
    return any(f["code"] == "identifiability" for f in info["diagnostics"]["findings"])


def test_cell_lines_report_renders_in_chromium(fitted_run, chromium, tmp_path):
    run = tmp_path / "cell_lines"
    shutil.copytree(fitted_run, run)  # the session's shared run stays untouched
    t0 = time.perf_counter()
    page = _report(run)
    took = time.perf_counter() - t0
    info = json.loads((run / "run.json").read_text())
    assert info["timings"]["report"] < 30, info["timings"]  # figures + page after sampling (measured ~4 s)
    figs = _figures(run)
    assert {"posteriors", "forest", "shrinkage_gene", "shrinkage_cell_line", "pred_vs_obs", "ppc", "trace", "rank"} <= figs
    assert not any(f.startswith("conditional_") for f in figs)  # intercept-only model
    assert ({"identifiability", "pairs"} <= figs) == _has_ident(run)
    probe = _assert_renders(chromium, page, tmp_path)
    shown = {Path(i["file"]).stem for i in probe["images"]}
    assert {"posteriors", "forest", "shrinkage_gene", "pred_vs_obs", "trace"} <= shown
    print(f"cell_lines: hlm report {took:.1f} s (drawing + page {info['timings']['report']:.1f} s), "
          f"{page.stat().st_size / 1e6:.2f} MB")


def test_batch_report_sorts_in_chromium(chromium, tmp_path):
    from hlm_cli.outputs.report import write_batch_report

    batch = tmp_path / "batch"
    batch.mkdir()
    names = ["s1", "s2", "s3"]
    pd.DataFrame({"input": [f"{n}.csv" for n in names], "run_dir": names, "status": ["ok"] * 3}).to_csv(batch / "batch_status.csv", index=False)
    pd.DataFrame({"input": [f"{n}.csv" for n in names], "run_dir": names, "parameter": "Intercept", "kind": "population",
                  "mean": [0.5, -2.0, 10.0], "hdi94_lb": [0, -3, 9], "hdi94_ub": [1, -1, 11]}).to_csv(batch / "batch_summary.csv", index=False)
    for n in names:
        (batch / n).mkdir()
        (batch / n / "report.html").write_text("<!DOCTYPE html><html><body>run</body></html>")
    page = write_batch_report(batch)
    click = ("var th = Array.prototype.filter.call(document.querySelectorAll('th'), function (h) { return h.textContent === 'Intercept'; })[0];"
             "th.click(); var asc = Array.prototype.map.call(document.querySelectorAll('tbody tr'), function (r) { return r.cells[0].textContent; });"
             "th.click(); var desc = Array.prototype.map.call(document.querySelectorAll('tbody tr'), function (r) { return r.cells[0].textContent; });"
             "var links = Array.prototype.map.call(document.querySelectorAll('tbody a'), function (a) { return a.href; });"
             "window.__extra = {asc: asc, desc: desc, links: links};")
    probe = browser_probe(chromium, page, tmp_path / "chrome", click)
    assert probe["errors"] == []
    assert probe["extra"]["asc"] == ["s2.csv", "s1.csv", "s3.csv"]
    assert probe["extra"]["desc"] == ["s3.csv", "s1.csv", "s2.csv"]
    assert all(link.startswith("file://") and link.endswith("/report.html") for link in probe["extra"]["links"])


SAMPLE_FITS = {
    "cell_lines": ("cell_lines.csv", "logfc ~ 1 + (1|gene) + (1|cell_line)", [],
                   {"posteriors", "forest", "shrinkage_gene", "shrinkage_cell_line", "pred_vs_obs", "ppc", "trace", "rank"}),
    "mice": ("mice_wake.csv", "WAKE ~ Treatment * Genotype + (1|mouse)", ["--prior-predictive"],
             {"posteriors", "forest", "shrinkage_mouse", "pred_vs_obs", "ppc", "prior_ppc", "trace", "rank",
              "conditional_Treatment", "conditional_Genotype", "conditional_Treatment_x_Genotype"}),
    "schools": ("schools_pupils.csv", "score ~ 1 + (1|region/school)", [],
                {"posteriors", "forest", "shrinkage_region", "shrinkage_region_school", "pred_vs_obs", "ppc", "trace", "rank"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLE_FITS))
def test_sample_dataset_reports(name, chromium, tmp_path):
    from hlm_cli.cli.app import main

    csv, formula, extra, expected = SAMPLE_FITS[name]
    run = tmp_path / name
    args = ["fit", str(SAMPLE / csv), "--formula", formula, "--out", str(run), "--draws", "300", "--tune", "300",
            "--chains", "2", "--seed", "1", "--quiet", *extra]
    assert main(args) in (0, 3)
    page = _report(run)
    info = json.loads((run / "run.json").read_text())
    figs = _figures(run)
    assert expected <= figs, expected - figs
    assert not any(f.startswith("conditional_") for f in figs - expected)
    assert ({"identifiability", "pairs"} <= figs) == _has_ident(run)
    assert ("ppc_rootogram" in figs) is False  # gaussian responses
    assert info["timings"]["report"] < 30
    _assert_renders(chromium, page, tmp_path)
    print(f"{name}: report {info['timings']['report']:.1f} s, {page.stat().st_size / 1e6:.2f} MB")
