"""`snakemake --report` on a completed run of the test config, opened in headless
Chromium (Debian's /usr/bin/chromium): the report's own JavaScript shows every item the
way its view buttons do, and every plot must come out as a decoded image and every
table as a framed page. A screenshot of the report showing the accuracy heatmap is
kept; its path is printed to the terminal."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess

import pytest
import yaml
from snakemake_runs import snakemake_command

from xlt.paths import REPORT, REPORT_PLOTS, REPORT_TABLES

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (/usr/bin/chromium): apt-get install chromium"
)

# Run inside the report after it loaded: open each category as its menu entry does, press
# each entry's view button, and note what the page then shows. Download-only entries
# (a Markdown file) are noted, not opened. Ends on the entry named SHOW_LAST.
CHECK_SCRIPT = """
window.addEventListener("load", async () => {
  const seen = [];
  const tick = () => new Promise((resolve) => setTimeout(resolve, 200));
  const openCategory = async (category) => {
    app.setView({ navbarMode: "menu" });
    await tick();
    app.showCategory(category);
    await tick();
  };
  const press = async (category, row) => {
    const label = row.querySelector("td").textContent;
    const button = row.querySelector("td:last-child a");
    if (button.hasAttribute("download")) return { category, label, download: button.getAttribute("download") };
    button.click();
    await tick();
    const entry = results[app.state.resultPath] || {};
    const item = { category, label, path: app.state.resultPath, content: app.state.content };
    const image = [...document.images].find((img) => img.getAttribute("src") === entry.data_uri);
    if (image) {
      const shownWidth = image.getBoundingClientRect().width;
      Object.assign(item, { complete: image.complete, naturalWidth: image.naturalWidth, shownWidth });
    }
    const frames = [...document.querySelectorAll("iframe")];
    item.framed = frames.some((frame) => frame.getAttribute("src") === entry.data_uri);
    return item;
  };
  try {
    while (!app) await tick();
    for (const category of Object.keys(categories).sort()) {
      await openCategory(category);
      const count = document.querySelectorAll("tbody tr").length;
      for (let i = 0; i < count; i++) seen.push(await press(category, document.querySelectorAll("tbody tr")[i]));
    }
    const last = seen.find((item) => item.path === SHOW_LAST);
    if (last) {
      await openCategory(last.category);
      const rows = [...document.querySelectorAll("tbody tr")];
      const row = rows.find((tr) => tr.querySelector("td").textContent === last.label);
      await press(last.category, row);
    }
  } catch (error) {
    seen.push({ error: String(error) });
  }
  const out = document.createElement("pre");
  out.id = "xlt-check";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
"""


def chromium(page, profile, *args: str) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=30000",
        "--window-size=1400,1000",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout


def report_results(report_html: str) -> dict:
    """The report's embedded `results`: path -> mime type, caption, data URI..."""
    found = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', report_html, re.S)
    assert found, "no results block in the report"
    return json.loads(found.group(1))


def test_report_renders_every_plot_and_table_in_chromium(repo, tiny_study, tmp_path, capsys):
    workdir, configfile = tiny_study
    config = yaml.safe_load(configfile.read_text())
    report = workdir / "results" / "report.html"
    snakemake_command(repo / "Snakefile", workdir, configfile, "--report", str(report))
    source = report.read_text(encoding="utf-8")
    results = report_results(source)
    expected = {f"{REPORT}/{name}" for name in (*REPORT_PLOTS.values(), *REPORT_TABLES.values(), "summary.md")}
    assert set(results) == expected
    assert all(entry["caption"].strip() for entry in results.values()), "every item has a caption"

    accuracy_plot = f"{REPORT}/{REPORT_PLOTS['accuracy']}"
    checked = tmp_path / "report_checked.html"
    script = f"<script>const SHOW_LAST = {json.dumps(accuracy_plot)};{CHECK_SCRIPT}</script>"
    at = source.rindex("</body>")
    checked.write_text(source[:at] + script + source[at:], encoding="utf-8")
    dom = chromium(checked, tmp_path / "profile", "--dump-dom")
    found = re.search(r'<pre id="xlt-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not finish in Chromium"
    seen = json.loads(html.unescape(found.group(1)))
    assert not [item for item in seen if "error" in item], seen
    by_path = {item["path"]: item for item in seen if "path" in item}

    for name in REPORT_PLOTS.values():
        item = by_path[f"{REPORT}/{name}"]
        assert item["content"] == "img" and item["complete"], item
        assert item["naturalWidth"] > 400 and item["shownWidth"] > 400, item
    for name in REPORT_TABLES.values():
        item = by_path[f"{REPORT}/{name}"]
        assert item["content"] == "html" and item["framed"], item
        page = base64.b64decode(results[f"{REPORT}/{name}"]["data_uri"].split(",", 1)[1]).decode("utf-8")
        assert "<table" in page, name
    verdicts = base64.b64decode(results[f"{REPORT}/{REPORT_TABLES['verdicts']}"]["data_uri"].split(",", 1)[1]).decode(
        "utf-8"
    )
    verdict_list, warning_list = verdicts.split("<h2>Format warnings</h2>", 1)
    assert verdict_list.count("<li>") == 3 * len(config["models"])  # fine-tuning under direct and cot, and the CoT gain
    # the fixture's tiny models run out of token budget on every CoT row: the warnings must say so
    assert "cut by the token budget" in warning_list.split("<h2>", 1)[0]
    assert [item["download"] for item in seen if "download" in item] == ["summary.md"]

    screenshot = tmp_path / "report.png"
    chromium(checked, tmp_path / "profile", f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nscreenshot of the report showing the accuracy heatmap: {screenshot}")
