"""Reports: Markdown, self-contained HTML (rendered for real in headless Chromium), JSON.

The browser check needs Chromium on PATH (``scripts/setup.sh`` installs it as root with apt-get).
Where setup could not install it, it records why in ``<venv>/chromium-skipped.txt`` and the check
is skipped with that reason; without the record, a missing Chromium fails it.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asr.scoring import compare, score_texts, write_reports
from asr.cli.score import main

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_html_report.py"

REFS = {"spk1-u1": "the cat sat on the mat", "spk1-u2": "hello world",
        "spk2-u1": "a b c d e f g", "spk2-u2": "", "spk3-u1": "good morning"}
HYPS = {"spk1-u1": "the hat sat on mat", "spk1-u2": "hello world",
        "spk2-u1": "a b x d e f g", "spk2-u2": "uh"}


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    a = score_texts(REFS, HYPS, n_bootstrap=200, seed=3, ref_name="ref.txt", hyp_name="a.txt")
    b = score_texts(REFS, REFS, n_bootstrap=200, seed=3, ref_name="ref.txt", hyp_name="b.txt")
    out = tmp_path_factory.mktemp("report")
    paths = write_reports(a, out, compare(a, b, n_bootstrap=200))
    assert paths == {"md": out / "report.md", "html": out / "report.html",
                     "json": out / "summary.json"}
    return out


def test_summary_json_holds_all_numbers(report_dir):
    d = json.loads((report_dir / "summary.json").read_text())
    assert d["words"] == {"hits": 12, "substitutions": 2, "deletions": 3, "insertions": 1,
                          "ref_len": 17, "hyp_len": 15, "errors": 6}
    assert d["wer"] == pytest.approx(6 / 17) and d["ser"] == pytest.approx(4 / 5)
    assert d["n_missing_hyp"] == 1 and d["missing_hyp_ids"] == ["spk3-u1"]
    assert d["normalization"]["lowercase"] is False and d["normalization"]["whitespace"]
    ci = d["wer_ci"]
    assert ci["unit"] == "utterance" and ci["seed"] == 3 and ci["low"] <= d["wer"] <= ci["high"]
    assert [s["speaker"] for s in d["speakers"]] == ["spk1", "spk2", "spk3"]
    assert d["speaker_source"].startswith("utterance-id prefix")
    assert d["top_insertions"] == [{"hyp": "uh", "count": 1}]
    cmp = d["comparison"]
    assert cmp["paired_bootstrap"]["verdict"] and cmp["mapsswe"]["verdict"]
    assert cmp["wer_b"] == 0.0
    # an utterance with an empty reference and an insertion has an infinite WER: null in JSON
    assert next(u for u in d["utterances"] if u["id"] == "spk2-u2")["wer"] is None


def test_markdown_has_tables_alignments_and_settings(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "keep-case, punctuation kept, whitespace collapsed" in md
    assert "| WER | 35.29% |" in md
    assert "## Speakers" in md and "| spk2 | 2 | 7 |" in md
    assert ("REF:  the cat sat on the mat\nHYP:  the hat sat on *** mat\n"
            "Eval:     S          D\n") in md
    assert "paired bootstrap" in md and "MAPSSWE" in md


def test_html_is_self_contained_with_three_png_plots(report_dir):
    page = (report_dir / "report.html").read_text()
    imgs = re.findall(r'<img class="plot" id="([^"]+)"[^>]* src="data:image/png;base64,([^"]+)"',
                      page)
    assert [i for i, _ in imgs] == ["plot-wer_per_speaker", "plot-error_types",
                                    "plot-wer_vs_length"]
    for _, b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert not [p for p in report_dir.iterdir() if p.name.startswith(".")]  # no temp files


_CHROMIUM = shutil.which("chromium")
_SKIP_RECORD = Path(sys.prefix) / "chromium-skipped.txt"
# The one way these checks do not run: no Chromium, and scripts/setup.sh wrote down why (no root,
# no apt-get). The condition and its reason are fixed at collection, so pytest reports it.
needs_chromium = pytest.mark.skipif(
    _CHROMIUM is None and _SKIP_RECORD.is_file(),
    reason=_SKIP_RECORD.read_text(encoding="utf-8").strip() if _SKIP_RECORD.is_file() else "")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Chromium's path; a missing Chromium without setup.sh's record is a failure."""
    if _CHROMIUM is None:
        pytest.fail("Chromium is not on PATH and scripts/setup.sh recorded no reason to skip the "
                    f"browser check ({_SKIP_RECORD}); rerun scripts/setup.sh")
    return _CHROMIUM


def _check(path: Path, chromium: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(path), "--chromium", chromium],
                          capture_output=True, text=True, timeout=180)


@needs_chromium
def test_html_report_renders_in_headless_chromium(report_dir, chromium):
    proc = _check(report_dir / "report.html", chromium)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK")


@needs_chromium
def test_chromium_check_fails_on_a_broken_page(tmp_path, report_dir, chromium):
    """JS error, an image that is not a PNG, a truncated PNG, too few plots: all reported."""
    png = base64.b64decode(re.search(r"base64,([^\"]+)",
                                     (report_dir / "report.html").read_text()).group(1))
    truncated = base64.b64encode(png[:len(png) // 3]).decode()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                   '<img class="plot" id="p1" src="data:image/png;base64,AAAA">'
                   f'<img class="plot" id="p2" src="data:image/png;base64,{truncated}">'
                   "<script>undefinedFunction();</script></body></html>")
    proc = _check(bad, chromium)
    assert proc.returncode == 1
    assert "js error" in proc.stderr
    assert "image p1 did not decode" in proc.stderr and "image p2 did not decode" in proc.stderr
    assert "expected at least 3 plot images, found 2" in proc.stderr


def test_cli_compare_writes_all_reports(tmp_path, capsys):
    ref, a, b = (tmp_path / n for n in ("ref", "a", "b"))
    ref.write_text("".join(f"{k} {v}\n" for k, v in REFS.items()))
    a.write_text("".join(f"{k} {v}\n" for k, v in HYPS.items()))
    b.write_text("".join(f"{k} {v}\n" for k, v in REFS.items()))
    out = tmp_path / "out"
    assert main([str(ref), str(a), "--compare", str(b), "--out-dir", str(out),
                 "--bootstrap", "100", "--bootstrap-unit", "speaker", "--strip-punct"]) == 0
    stdout = capsys.readouterr().out
    assert "paired bootstrap" in stdout and "MAPSSWE" in stdout and "wrote" in stdout
    d = json.loads((out / "summary.json").read_text())
    assert d["wer_ci"]["unit"] == "speaker" and d["normalization"]["strip_punct"] is True
    assert d["comparison"]["paired_bootstrap"]["unit"] == "speaker"
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "summary.json"}
