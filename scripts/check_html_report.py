#!/usr/bin/env python3
"""Check that an ``asr score`` report.html renders in headless Chromium.

Checks, in order:
1. the page is self-contained (no ``src``/``href`` pointing outside the file except ``#``
   anchors and ``data:`` URIs);
2. loaded in headless Chromium, it raises no JavaScript error (uncaught errors, rejected
   promises, ``console.error``, failed resource loads);
3. it holds at least ``--min-images`` ``<img class="plot">`` elements, and every image has
   loaded and decodes (naturalWidth and naturalHeight > 0, and drawn on a canvas it is
   at least 95% opaque: the plots have an opaque white background; a truncated PNG is not).

How: a copy of the page gets a small probe script as the first element of ``<head>``; in
the load event the probe writes its findings as JSON into the DOM, and Chromium's
``--dump-dom`` prints that DOM. Chromium must be installed (Debian: ``apt-get install -y
chromium``). Exit status 0 when all checks pass, 1 otherwise (reasons on stderr).

Usage:
    python scripts/check_html_report.py out/report.html [--screenshot shot.png]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

PROBE = """<script id="__probe_script__">
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) {
      errors.push("resource failed: " + String(t.src || t.href).slice(0, 80));
    } else {
      errors.push("js error: " + (e.message || String(e.error)));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason));
  });
  var origError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return origError.apply(console, arguments);
  };
  function painted(img) {
    // Draw the image on a canvas (forces a full decode) and return the share of opaque
    // pixels on a 16x16 grid; a broken or undecodable image gives 0 or throws.
    try {
      var c = document.createElement("canvas");
      c.width = 16; c.height = 16;
      var ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0, 16, 16);
      var d = ctx.getImageData(0, 0, 16, 16).data, n = 0;
      for (var i = 3; i < d.length; i += 4) { if (d[i] > 0) { n++; } }
      return n / 256;
    } catch (e) {
      return -1;
    }
  }
  window.addEventListener("load", function () {
    // Synchronous on purpose: --dump-dom may print the DOM right after the load event.
    var infos = Array.prototype.map.call(document.images, function (img) {
      return {id: img.id, cls: img.className, complete: img.complete,
              w: img.naturalWidth, h: img.naturalHeight, painted: painted(img)};
    });
    var out = document.createElement("pre");
    out.id = "__probe_result__";
    out.textContent = JSON.stringify({errors: errors, images: infos});
    document.body.appendChild(out);
  });
})();
</script>"""

_URL_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE)
_RESULT = re.compile(r'<pre id="__probe_result__">(.*?)</pre>', re.DOTALL)


def external_refs(page: str) -> list[str]:
    """URLs in src/href attributes that would load something outside the file."""
    return [u[:80] for u in _URL_ATTR.findall(page)
            if not (u.startswith("data:") or u.startswith("#"))]


def _with_probe(page: str) -> str:
    m = re.search(r"<head[^>]*>", page, re.IGNORECASE)
    if m:
        return page[:m.end()] + PROBE + page[m.end():]
    return PROBE + page


def _chromium(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def probe(report: Path, chromium: str, timeout: float) -> dict:
    """Load ``report`` (with the probe injected) and return the probe's findings."""
    page = report.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="report-check-") as tmp:
        probed = Path(tmp) / "probed.html"
        probed.write_text(_with_probe(page), encoding="utf-8")
        proc = _chromium(chromium, ["--virtual-time-budget=10000", "--dump-dom",
                                    probed.as_uri()], timeout)
    m = _RESULT.search(proc.stdout)
    if not m:
        tail = [ln for ln in (proc.stderr or "").splitlines() if "dbus" not in ln][-3:]
        raise RuntimeError(f"no probe result in Chromium's DOM dump (exit {proc.returncode}, "
                           f"{len(proc.stdout)} chars of DOM): " + " | ".join(tail))
    return json.loads(html.unescape(m.group(1)))


def check(report: Path, chromium: str = "/usr/bin/chromium", min_images: int = 3,
          timeout: float = 90.0) -> list[str]:
    """All problems found (empty list: the report passes)."""
    if not report.is_file():
        return [f"report not found: {report}"]
    if shutil.which(chromium) is None:
        return [f"chromium not found at {chromium} (Debian: apt-get install -y chromium)"]
    problems = [f"external reference: {u}" for u in
                external_refs(report.read_text(encoding="utf-8"))]
    try:
        found = probe(report, chromium, timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return problems + [str(e)]
    problems += found["errors"]
    plots = [i for i in found["images"] if "plot" in i["cls"].split()]
    if len(plots) < min_images:
        problems.append(f"expected at least {min_images} plot images, found {len(plots)}")
    for i in found["images"]:
        if not (i["complete"] and i["w"] > 0 and i["h"] > 0 and i["painted"] >= 0.95):
            problems.append(f"image {i['id'] or '?'} did not decode (complete={i['complete']}, "
                            f"{i['w']}x{i['h']}, opaque share {i['painted']:.2f})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path, help="report.html to check")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary")
    ap.add_argument("--min-images", type=int, default=3, help="plot images required")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per Chromium run")
    ap.add_argument("--screenshot", type=Path, help="also save a PNG screenshot here")
    a = ap.parse_args(argv)
    problems = check(a.report, a.chromium, a.min_images, a.timeout)
    if a.screenshot and not problems:
        _chromium(a.chromium, [f"--screenshot={a.screenshot.resolve()}",
                               "--window-size=1200,2400", a.report.resolve().as_uri()], a.timeout)
    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        return 1
    print(f"OK: {a.report} renders without errors; plot images decode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
