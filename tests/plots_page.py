"""Render `dvc plots show` to HTML and count what headless Chromium actually draws.

    drawn = draw_plots(repo, out_dir)   # {plot name: {"marks": {marktype: items}, "error": ...}}

DVC's page loads vega from a CDN; here the page template (`--html-template`) loads a local
bundle of Vega, Vega-Lite and vega-embed (the `vl-convert-python` wheel ships one) and wraps
`vegaEmbed` so that each chart renders as SVG and, once drawn, reports how many items each
data mark of its Vega scenegraph holds (axes, legends and titles are not counted). Images
report their pixel width once loaded. Chromium prints the page after its virtual time
budget (`--dump-dom`), and the report is read back from it.
"""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import run

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC plots</title>
<script src="vega.js"></script>
<script>
window.drawn = {};
function report() {
  document.getElementById("drawn-report").textContent = JSON.stringify(window.drawn);
}
function countMarks(node, counts) {
  if (node.marktype !== undefined) {
    if (node.role === "mark" && node.marktype !== "group") {
      counts[node.marktype] = (counts[node.marktype] || 0) + node.items.length;
    }
    node.items.forEach((item) => countMarks(item, counts));
  } else if (node.items) {
    node.items.forEach((item) => countMarks(item, counts));
  }
  return counts;
}
const embed = window.vegaEmbed;
window.vegaEmbed = function (el, spec, options) {
  const name = el.slice(1);
  window.drawn[name] = {marks: null, error: "not drawn"};
  return embed(el, spec, Object.assign({}, options, {renderer: "svg", actions: false})).then(
    (result) => { window.drawn[name] = {marks: countMarks(result.view.scenegraph().root, {}), error: null}; report(); },
    (err) => { window.drawn[name] = {marks: null, error: String(err)}; report(); },
  );
};
window.addEventListener("load", () => {
  for (const img of document.images) {
    const name = img.closest("div[id]").id;
    window.drawn[name] = {marks: img.naturalWidth > 0 ? {image: img.naturalWidth} : null, error: null};
  }
  report();
});
</script>
</head>
<body>
<pre id="drawn-report"></pre>
{plot_divs}
</body>
</html>
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_page_template(folder: Path) -> Path:
    """The HTML template for `dvc plots show --html-template`, beside the local vega bundle."""
    import vl_convert

    folder.mkdir(parents=True, exist_ok=True)
    # DVC's templates are Vega-Lite 5 specs
    (folder / "vega.js").write_text(vl_convert.javascript_bundle(vl_version="5.21"), encoding="utf-8")
    template = folder / "page.html"
    template.write_text(PAGE, encoding="utf-8")
    return template


def draw(html: Path) -> dict[str, dict]:
    """Open `html` in headless Chromium; the report of what each plot drew, by div id."""
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
        "--virtual-time-budget=30000", "--dump-dom", html.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="drawn-report">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1), f"no report in the page:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(html_module.unescape(found.group(1)))


def show(repo: Path, out: Path, *args: str) -> Path:
    """`dvc plots show` (or `diff`, through `args`) rendered with the local page template; the HTML."""
    template = write_page_template(out)
    verb = list(args) or ["show"]
    run(["dvc", "plots", *verb, "--html-template", str(template), "--out", str(out)], repo)
    return out / "index.html"


def div_id(path: str) -> str:
    """The id DVC gives a plot's div (dvc_render's Renderer.remove_special_chars)."""
    return path.translate({ord(c): "_" for c in r"!@#$%^&*()[]{};,<>?\/:.|`~=_+ "})
