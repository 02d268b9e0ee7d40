"""Scoring reports: report.md, self-contained report.html (base64 PNG plots) and summary.json.

All three are built from the same tables, so they always agree; each file is written
atomically. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.fileio import atomic_write_text
from asr.scoring.align import format_alignment

if TYPE_CHECKING:  # runtime import would be circular: asr.scoring imports this module
    from asr.scoring import Comparison, ScoreResult

Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)
MAX_PLOT_SPEAKERS = 60


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if math.isfinite(x) else "inf"


def _ci(ci: Any) -> str:
    return f"[{_pct(ci.low)}, {_pct(ci.high)}]" if ci is not None else "-"


def _p(p: float, n_resamples: int | None = None) -> str:
    """A p-value for people; a bootstrap p of 0 only means below 1/B."""
    if p == 0.0 and n_resamples:
        return f"<{1 / n_resamples:.2g}"
    return f"{p:.3g}"


def json_ready(x: Any) -> Any:
    """JSON has no inf/nan: map them to None, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    return x


def _counts_dict(c: Any) -> dict[str, int]:
    return {"hits": c.hits, "substitutions": c.subs, "deletions": c.dels, "insertions": c.ins,
            "ref_len": c.ref_len, "hyp_len": c.hyp_len, "errors": c.errors}


def summary_dict(result: ScoreResult, comparison: Comparison | None = None,
                 top: int = 10) -> dict[str, Any]:
    """Every number of the report as plain JSON-ready data (rates are fractions; inf -> None)."""
    r = result
    d: dict[str, Any] = {
        "schema": "asr-score/1",
        "ref": r.ref_name, "hyp": r.hyp_name,
        "normalization": r.normalization.to_dict(),
        "n_utterances": len(r.utts),
        "n_missing_hyp": len(r.missing_hyp_ids), "missing_hyp_ids": r.missing_hyp_ids,
        "wer": r.wer, "cer": r.cer, "ser": r.ser, "n_sentence_errors": r.n_sent_err,
        "words": _counts_dict(r.words), "chars": _counts_dict(r.chars),
        "wer_ci": r.ci.to_dict() if r.ci else None,
        "speaker_source": r.speaker_source,
        "speakers": [{"speaker": s.speaker, "n_utterances": s.n_utts, "wer": s.wer,
                      "n_sentence_errors": s.n_sent_err, "words": _counts_dict(s.words),
                      "wer_ci": s.ci.to_dict() if s.ci else None} for s in r.speakers],
        "top_substitutions": [{"ref": a, "hyp": b, "count": n}
                              for a, b, n in r.top_substitutions(top)],
        "top_deletions": [{"ref": a, "count": n} for a, n in r.top_deletions(top)],
        "top_insertions": [{"hyp": a, "count": n} for a, n in r.top_insertions(top)],
        "comparison": None,
        "utterances": [{"id": u.id, "speaker": u.speaker, "ref": u.ref, "hyp": u.hyp,
                        "missing_hyp": u.missing_hyp, "wer": u.words.rate,
                        "words": _counts_dict(u.words), "chars": _counts_dict(u.chars)}
                       for u in r.utts],
    }
    if comparison is not None:
        c = comparison
        d["comparison"] = {
            "a": c.name_a, "b": c.name_b, "wer_a": c.wer_a, "wer_b": c.wer_b, "alpha": c.alpha,
            "paired_bootstrap": {**c.bootstrap.to_dict(), "verdict": c.bootstrap_verdict},
            "mapsswe": {**c.mapsswe.to_dict(), "verdict": c.mapsswe_verdict},
            "notes": c.notes}
    return json_ready(d)


def _tables(r: ScoreResult, c: Comparison | None, top: int) -> list[Table]:
    ci_desc = (f"{r.ci.confidence:.0%} CI, bootstrap over {r.ci.unit}s, "
               f"{r.ci.n_resamples} resamples, seed {r.ci.seed}" if r.ci else "CI")
    w, ch = r.words, r.chars
    tables: list[Table] = [
        ("Summary", ["metric", "rate", ci_desc, "errors", "reference"], [
            ["WER", _pct(r.wer), _ci(r.ci), str(w.errors), f"{w.ref_len} words"],
            ["CER", _pct(r.cer), "-", str(ch.errors), f"{ch.ref_len} chars"],
            ["SER", _pct(r.ser), "-", str(r.n_sent_err), f"{len(r.utts)} utterances"]]),
        ("Error counts", ["level", "hits", "substitutions", "deletions", "insertions",
                          "ref", "hyp"],
         [[name, str(x.hits), str(x.subs), str(x.dels), str(x.ins), str(x.ref_len),
           str(x.hyp_len)] for name, x in (("words", w), ("chars", ch))]),
    ]
    if c is not None:
        pb, mp = c.bootstrap, c.mapsswe
        tables.append(("Comparison (A = " + c.name_a + ", B = " + c.name_b + ")",
                       ["test", "statistic", "p-value", "verdict"], [
            ["WER", f"A {_pct(c.wer_a)}, B {_pct(c.wer_b)}", "-", "-"],
            [f"paired bootstrap ({pb.n_resamples} x {pb.unit})",
             f"WER(B)-WER(A) = {100 * pb.delta:+.2f} pts, {pb.confidence:.0%} CI "
             f"[{100 * pb.low:+.2f}, {100 * pb.high:+.2f}], P(B better) = {pb.prob_b_better:.3f}",
             _p(pb.p_value, pb.n_resamples), c.bootstrap_verdict],
            [f"MAPSSWE ({mp.n_segments} segments, >= {mp.min_good} correct boundary words)",
             f"mean errors A-B per segment = {mp.mean_diff:+.3f}, Z = {mp.z:.3f}",
             _p(mp.p_value), c.mapsswe_verdict]]))
    tables.append(("Speakers", ["speaker", "utts", "ref words", "WER", ci_desc.split(",")[0],
                                "S", "D", "I", "SER"],
                   [[s.speaker, str(s.n_utts), str(s.words.ref_len), _pct(s.wer), _ci(s.ci),
                     str(s.words.subs), str(s.words.dels), str(s.words.ins),
                     _pct(s.n_sent_err / s.n_utts)] for s in r.speakers]))
    tables.append(("Most frequent substitutions", ["count", "ref", "hyp"],
                   [[str(n), a, b] for a, b, n in r.top_substitutions(top)]))
    tables.append(("Most frequent deletions", ["count", "ref"],
                   [[str(n), a] for a, n in r.top_deletions(top)]))
    tables.append(("Most frequent insertions", ["count", "hyp"],
                   [[str(n), a] for a, n in r.top_insertions(top)]))
    return tables


def _notes(r: ScoreResult) -> list[str]:
    notes = [f"Reference: {r.ref_name}", f"Hypothesis: {r.hyp_name}",
             f"Normalisation: {r.normalization.describe()}; CER counts spaces as characters",
             f"Speakers: {r.speaker_source}",
             "WER = (S+D+I) / reference words over the whole corpus"]
    if r.missing_hyp_ids:
        notes.append(f"Warning: {len(r.missing_hyp_ids)} reference utterance(s) have no "
                     "hypothesis and were scored as empty")
    return notes


def alignment_text(r: ScoreResult) -> str:
    """sclite ``pra``-style per-utterance alignments."""
    blocks = []
    for u in r.utts:
        ref, hyp, ev = format_alignment(u.ops)
        w = u.words
        head = f"id: {u.id}  speaker: {u.speaker}" + ("  (no hypothesis)" if u.missing_hyp else "")
        blocks.append(f"{head}\nScores: (#C #S #D #I) {w.hits} {w.subs} {w.dels} {w.ins}\n"
                      f"REF:  {ref}\nHYP:  {hyp}\n" + f"Eval: {ev}".rstrip() + "\n")
    return "\n".join(blocks)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|") or " "


def render_markdown(r: ScoreResult, c: Comparison | None = None, top: int = 10) -> str:
    """The whole report as Markdown."""
    out = ["# ASR scoring report", ""] + [f"- {n}" for n in _notes(r)] + [""]
    for title, header, rows in _tables(r, c, top):
        out += [f"## {title}", "", "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header)]
        out += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in rows]
        out += ["" if rows else "(none)", ""]
    out += ["## Alignments", "", "```", alignment_text(r).rstrip("\n"), "```", ""]
    return "\n".join(out)


def _png_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plot_speakers(plt: Any, r: ScoreResult) -> Any:
    spk = [s for s in r.speakers if math.isfinite(s.wer)]
    title = "WER per speaker"
    if len(spk) > MAX_PLOT_SPEAKERS:  # keep the plot readable: the speakers with most words
        title += f" ({MAX_PLOT_SPEAKERS} of {len(spk)} with most reference words)"
        spk = sorted(spk, key=lambda s: -s.words.ref_len)[:MAX_PLOT_SPEAKERS]
        spk.sort(key=lambda s: s.speaker)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * max(1, len(spk))))
    y = list(range(len(spk)))
    err = [[max(0.0, 100 * (s.wer - s.ci.low)) if s.ci else 0.0 for s in spk],
           [max(0.0, 100 * (s.ci.high - s.wer)) if s.ci and math.isfinite(s.ci.high) else 0.0
            for s in spk]]
    ax.barh(y, [100 * s.wer for s in spk], xerr=err, color="#4c72b0", ecolor="black",
            capsize=3)
    ax.set_yticks(y, [s.speaker for s in spk])
    ax.invert_yaxis()
    ax.set_xlabel("WER (%)  (bars: bootstrap CI over the speaker's utterances)")
    ax.set_title(title)
    return fig


def _plot_error_types(plt: Any, r: ScoreResult) -> Any:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    vals = [r.words.subs, r.words.dels, r.words.ins]
    bars = ax.bar(["substitutions", "deletions", "insertions"], vals,
                  color=["#dd8452", "#c44e52", "#55a868"])
    ax.bar_label(bars, [f"{v} ({_pct(v / r.words.ref_len) if r.words.ref_len else '-'})"
                        for v in vals])
    ax.set_ylabel("count")
    ax.set_title("Error types (share of reference words)")
    ax.margins(y=0.15)
    return fig


def _plot_length(plt: Any, r: ScoreResult) -> Any:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    us = [u for u in r.utts if u.words.ref_len > 0]  # WER of an empty reference is undefined
    ax.scatter([u.words.ref_len for u in us], [100 * u.words.rate for u in us], s=14,
               alpha=0.5, color="#4c72b0", label="utterance")
    xs, ys = _binned_wer(us)
    ax.plot(xs, ys, color="#c44e52", marker="o", ms=4, label="pooled WER per length bin")
    ax.set_xlabel("reference length (words)")
    ax.set_ylabel("WER (%)")
    ax.set_title("WER against reference length")
    ax.legend(fontsize=8)
    return fig


def plots(r: ScoreResult) -> dict[str, str]:
    """Three plots as base64 PNG: per-speaker WER with CI bars, error types, WER vs length."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for key, draw in (("wer_per_speaker", _plot_speakers), ("error_types", _plot_error_types),
                      ("wer_vs_length", _plot_length)):
        fig = draw(plt, r)
        out[key] = _png_b64(fig)
        plt.close(fig)
    return out


def _binned_wer(us: list[Any], max_bins: int = 10) -> tuple[list[float], list[float]]:
    """Pooled WER (%) in up to ``max_bins`` reference-length bins of similar size,
    plotted at each bin's mean length."""
    lens = np.array([u.words.ref_len for u in us])
    errs = np.array([u.words.errors for u in us])
    if len(lens) == 0:
        return [], []
    edges = np.unique(np.quantile(lens, np.linspace(0, 1, max_bins + 1)))
    which = np.clip(np.searchsorted(edges, lens, side="right") - 1, 0, max(len(edges) - 2, 0))
    xs, ys = [], []
    for b in np.unique(which):
        m = which == b
        xs.append(float(lens[m].mean()))
        ys.append(float(100.0 * errs[m].sum() / lens[m].sum()))
    return xs, ys


_CSS = """body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}
th{background:#f0f0f0}pre{background:#f8f8f8;padding:.5em;overflow-x:auto}
img{max-width:100%;display:block;margin:.5em 0}"""


def render_html(r: ScoreResult, c: Comparison | None = None, top: int = 10) -> str:
    """The whole report as one self-contained HTML page (no external resources, no JS)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>ASR scoring report</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>ASR scoring report</h1>", "<ul>"]
    out += [f"<li>{e(n)}</li>" for n in _notes(r)] + ["</ul>"]
    for title, header, rows in _tables(r, c, top):
        out += [f"<h2>{e(title)}</h2>", "<table><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{e(x)}</td>" for x in row) + "</tr>" for row in rows]
        out.append("</table>" if rows else "</table><p>(none)</p>")
    out.append("<h2>Plots</h2>")
    alts = {"wer_per_speaker": "WER per speaker with bootstrap error bars",
            "error_types": "Error type breakdown", "wer_vs_length": "WER against reference length"}
    for key, b64 in plots(r).items():
        out.append(f'<img class="plot" id="plot-{key}" alt="{e(alts[key])}" '
                   f'src="data:image/png;base64,{b64}">')
    out += [f"<h2>Alignments</h2><details><summary>{len(r.utts)} utterances "
            "(sclite pra style)</summary>", f"<pre>{e(alignment_text(r))}</pre></details>",
            "</body></html>", ""]
    return "\n".join(out)


def format_summary(r: ScoreResult, c: Comparison | None = None) -> str:
    """A few lines for stdout."""
    w = r.words
    ci = (f" {r.ci.confidence:.0%} CI {_ci(r.ci)} ({r.ci.unit} bootstrap)" if r.ci else "")
    lines = [f"WER {_pct(r.wer)}{ci}  [S={w.subs} D={w.dels} I={w.ins} H={w.hits} "
             f"N={w.ref_len}]",
             f"CER {_pct(r.cer)}  [{r.chars.errors}/{r.chars.ref_len} chars]   "
             f"SER {_pct(r.ser)}  [{r.n_sent_err}/{len(r.utts)} utterances]",
             f"normalisation: {r.normalization.describe()}",
             f"speakers: {r.speaker_source}"]
    if c is not None:
        lines += [f"compare: A={c.name_a} {_pct(c.wer_a)}  B={c.name_b} {_pct(c.wer_b)}",
                  f"  paired bootstrap: p={_p(c.bootstrap.p_value, c.bootstrap.n_resamples)}: "
                  f"{c.bootstrap_verdict}",
                  f"  MAPSSWE: p={_p(c.mapsswe.p_value)}: {c.mapsswe_verdict}"]
    return "\n".join(lines)


def write_reports(result: ScoreResult, out_dir: str | Path, comparison: Comparison | None = None,
                  top: int = 10) -> dict[str, Path]:
    """Write report.md, report.html and summary.json into ``out_dir``, each atomically.

    Returns:
        {"md": path, "html": path, "json": path}.
    """
    d = Path(out_dir)
    paths = {"md": d / "report.md", "html": d / "report.html", "json": d / "summary.json"}
    atomic_write_text(paths["json"], json.dumps(summary_dict(result, comparison, top),
                                                indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["md"], render_markdown(result, comparison, top))
    atomic_write_text(paths["html"], render_html(result, comparison, top))
    return paths
