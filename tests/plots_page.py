"""The offline page of `dvc plots show`, and what headless Chromium draws of it and of the report.

    python -m tests.plots_page --write       # rebuild .dvc/plots/page.html from vl-convert-python
    drawn = draw(show(repo, out))            # {div id: {"marks": {marktype: items}, "series": ..., "error": ...}}
    drawn = draw_report(report_html)         # {caption: {"marks": {kind: items}, "series": ..., "image": ...}}

DVC's own page loads Vega from a CDN and stays blank offline. The repo ships its own page
template, `.dvc/plots/page.html` (`.dvc/config`: `plots.html_template`, so a plain
`dvc plots show` uses it): Vega, Vega-Lite and vega-embed inline, the bundle the
`vl-convert-python` wheel ships (licences in `.dvc/plots/VEGA-LICENSES.txt`).

The tests draw the page DVC wrote, as a user would open it, with the network unreachable
(Chromium's proxy and DNS point nowhere). A counting script is put in a copy of the page
after the bundle: it wraps `vegaEmbed` so that each chart renders as SVG and, once drawn,
reports how many items each data mark of its Vega scenegraph holds and how many mark nodes
(series: one per line drawn) there are; axes, legends and titles are not counted. Images
report their pixel width once loaded. The report's charts are inline SVG whose data series
carry `data-mark` (see pipelines/outputs/charts.py); they are counted the same way. Chromium
prints the page after its virtual time budget (`--dump-dom`), and the counts are read back.
"""

from __future__ import annotations

import argparse
import configparser
import html as html_module
import importlib.metadata
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import ROOT, run

VL_VERSION = "5.21"  # DVC's templates are Vega-Lite 5 specs
TEMPLATE = ROOT / ".dvc" / "plots" / "page.html"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<script>
/* Offline page of `dvc plots show` / `dvc plots diff` (.dvc/config: plots.html_template): DVC's
   own page loads Vega from a CDN and stays blank offline. Vega @VEGA@, Vega-Lite @VL@ and
   vega-embed @EMBED@ inline: vl-convert-python @VLC@'s javascript_bundle (BSD-3-Clause;
   licences in .dvc/plots/VEGA-LICENSES.txt). Rebuilt by: python -m tests.plots_page --write */
(function () {
@BUNDLE@
})();
</script>
<style>
body { font-family: system-ui, sans-serif; }
div[id] { margin: 1em 0 2em; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""

REPORT = """
function report(drawn) {
  let pre = document.getElementById("drawn-report");
  if (!pre) {
    pre = document.createElement("pre");
    pre.id = "drawn-report";
    (document.body || document.documentElement).prepend(pre);
  }
  pre.textContent = JSON.stringify(drawn);
}
"""

COUNT_VEGA = (
    """<script>
window.drawn = {};"""
    + REPORT
    + """
function countMarks(node, counts, series) {
  if (node.marktype !== undefined) {
    if (node.role === "mark" && node.marktype !== "group") {
      counts[node.marktype] = (counts[node.marktype] || 0) + node.items.length;
      if (node.items.length) series[node.marktype] = (series[node.marktype] || 0) + 1;
    }
    node.items.forEach((item) => countMarks(item, counts, series));
  } else if (node.items) {
    node.items.forEach((item) => countMarks(item, counts, series));
  }
}
const embed = window.vegaEmbed;
window.vegaEmbed = function (el, spec, options) {
  const name = el.slice(1);
  window.drawn[name] = {marks: null, error: "not drawn"};
  return embed(el, spec, Object.assign({}, options, {renderer: "svg", actions: false})).then(
    (result) => {
      const counts = {}, series = {};
      countMarks(result.view.scenegraph().root, counts, series);
      window.drawn[name] = {marks: counts, series: series, error: null};
      report(window.drawn);
    },
    (err) => { window.drawn[name] = {marks: null, error: String(err)}; report(window.drawn); },
  );
};
window.addEventListener("load", () => {
  for (const img of document.images) {
    const name = img.closest("div[id]").id;
    window.drawn[name] = {marks: img.naturalWidth > 0 ? {image: img.naturalWidth} : null, error: null};
  }
  report(window.drawn);
});
</script>
"""
)

COUNT_SVG = (
    """<script>"""
    + REPORT
    + """
window.addEventListener("load", () => {
  const drawn = {};
  for (const figure of document.querySelectorAll("figure")) {
    const caption = figure.querySelector("figcaption").textContent;
    const marks = {}, series = {};
    for (const group of figure.querySelectorAll("[data-mark]")) {
      const kind = group.dataset.mark;
      const shapes = [...group.querySelectorAll("path, use, rect, image, text")].filter((el) => {
        const box = el.getBoundingClientRect();
        return box.width > 0 || box.height > 0;
      });
      if (!shapes.length) continue;
      marks[kind] = (marks[kind] || 0) + shapes.length;
      series[kind] = (series[kind] || 0) + 1;
    }
    const img = figure.querySelector("img");
    drawn[caption] = {marks: marks, series: series, image: img ? img.naturalWidth : null};
  }
  report(drawn);
});
</script>
"""
)

# no request leaves the machine: every host resolves nowhere and every proxy is closed
OFFLINE = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           "--host-resolver-rules=MAP * ~NOTFOUND"]  # fmt: skip


def page_template() -> str:
    """The page template, built from the installed vl-convert-python's bundle."""
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VL_VERSION)
    assert "</script" not in bundle.lower() and "{plot_divs}" not in bundle
    fills = {
        "@VEGA@": vl_convert.get_vega_version(),
        "@VL@": VL_VERSION,
        "@EMBED@": vl_convert.get_vega_embed_version(),
        "@VLC@": importlib.metadata.version("vl-convert-python"),
    }
    text = PAGE
    for key, value in fills.items():
        text = text.replace(key, value)
    return text.replace("@BUNDLE@", bundle)


def configured_template(repo: Path = ROOT) -> Path:
    """The page template `.dvc/config` names (relative to `.dvc`, as DVC reads it)."""
    config = configparser.ConfigParser()
    config.read(repo / ".dvc" / "config")
    return repo / ".dvc" / config["plots"]["html_template"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump(html: Path) -> str:
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *OFFLINE,
        "--virtual-time-budget=30000", "--dump-dom", html.resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="drawn-report">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1), f"no report in the page:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return html_module.unescape(found.group(1))


def _with_counter(html: Path, script: str, head: bool) -> Path:
    """A copy of `html` beside it (relative image paths still resolve) with the counting script
    after the page's own scripts (the last `</head>` or `</body>`: the inline bundle holds
    both tags in its strings); the script writes its report into a `<pre>`."""
    before, anchor, after = html.read_text(encoding="utf-8").rpartition("</head>" if head else "</body>")
    assert anchor, html
    text = before + script + anchor + after
    copy = html.with_name(f"counted-{html.name}")
    copy.write_text(text, encoding="utf-8")
    return copy


def draw(html: Path) -> dict[str, dict]:
    """Open a page `dvc plots` wrote in headless Chromium, offline; what each plot drew, by div id."""
    return json.loads(_dump(_with_counter(html, COUNT_VEGA, head=True)))


def draw_report(html: Path) -> dict[str, dict]:
    """Open a report in headless Chromium, offline; what each figure drew, by caption."""
    return json.loads(_dump(_with_counter(html, COUNT_SVG, head=False)))


def loads_from_the_network() -> bool:
    """Whether the browser, as `draw` runs it, fetches a script from a CDN (it must not)."""
    with tempfile.TemporaryDirectory() as tmp:
        with_cdn = Path(tmp) / "cdn.html"
        with_cdn.write_text('<html><head><script src="https://cdn.jsdelivr.net/npm/vega@5.20.2"></script></head><body>'
                            "</body></html>")  # fmt: skip
        script = f'<script>{REPORT}\naddEventListener("load", () => report(typeof vega !== "undefined"));</script>'
        return json.loads(_dump(_with_counter(with_cdn, script, head=True)))


def show(repo: Path, out: Path, *args: str) -> Path:
    """`dvc plots show` (or `diff`, through `args`) as a user runs it: the page template is the
    one `.dvc/config` names. Returns the page."""
    verb = list(args) or ["show"]
    run(["dvc", "plots", *verb, "--out", str(out)], repo)
    return out / "index.html"


def div_id(path: str) -> str:
    """The id DVC gives a plot's div (dvc_render's Renderer.remove_special_chars)."""
    return path.translate({ord(c): "_" for c in r"!@#$%^&*()[]{};,<>?\/:.|`~=_+ "})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {TEMPLATE.relative_to(ROOT)}")
    if parser.parse_args().write:
        TEMPLATE.write_text(page_template(), encoding="utf-8")
        print(f"{TEMPLATE.relative_to(ROOT)}: {TEMPLATE.stat().st_size:,} bytes")
    else:
        print("up to date" if TEMPLATE.read_text(encoding="utf-8") == page_template() else "stale: --write")
