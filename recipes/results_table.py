"""Markdown results tables for a recipe's RESULTS.md, from ``asr score`` summary.json files.

Recipe bookkeeping, not part of the ``asr`` library: recipes/common.sh's ``publish_results`` runs it
with the environment's python (it needs ``asr`` importable, nothing from recipes/).

One row per scored set (WER with its bootstrap CI, CER, SER, utterances; the decoder from the
``wer.json`` that ``asr evaluate``/``asr decode`` wrote beside the report), an optional mean row,
and the provenance a reader needs to trust or reproduce the numbers: the command, the machine
(``nproc``, CPU model, GPU), the git commit and the wall time of each stage.

``--update RESULTS.md --key K`` replaces the block written earlier under the same key, or
appends it, so rerunning a recipe refreshes its own table and leaves the others alone.

Example:
    python recipes/results_table.py exp/decode_test_greedy/report/summary.json \\
        exp/decode_test_beam/report/summary.json --title "2x128 BiLSTM" \\
        --command "bash recipes/fsdd/run.sh" --timing exp/timing.tsv \\
        --update recipes/fsdd/RESULTS.md --key fsdd-train
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from asr.errors import UserError
from asr.fileio import atomic_write_text

COLUMNS = ["set", "decoder", "utterances", "WER %", "95% CI", "CER %", "SER %"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _decoder(report_dir: Path) -> tuple[str, str]:
    """(kind, description) of the decoder, from the ``wer.json`` beside the report folder:
    ("greedy", "greedy") or ("beam", "beam 50 (lexicon, LM weight w, word score s)")."""
    path = report_dir.parent / "wer.json"
    try:
        dec = json.loads(path.read_text(encoding="utf-8")).get("decoder", "?")
    except (OSError, ValueError):
        return "?", "?"
    if isinstance(dec, dict):
        lm = f", LM weight {dec.get('lm_weight', 0):g}, word score {dec.get('word_score', 0):g}" \
            if dec.get("lm") else ", no LM"
        lex = "lexicon" if dec.get("lexicon") else "lexicon-free"
        kind = str(dec.get("type", "beam"))
        return kind, f"{kind} {dec.get('beam_size', '')} ({lex}{lm})"
    return str(dec), str(dec)


def set_name(summary_path: Path) -> str:
    """``exp/decode_test-clean_beam/report/summary.json`` -> ``test-clean``; other layouts:
    the folder above ``report``."""
    name = summary_path.parent.parent.name
    m = re.fullmatch(r"decode_(.+)_(greedy|beam)", name)
    return m.group(1) if m else name


def row(summary_path: str | os.PathLike, label: str | None = None) -> dict:
    p = Path(summary_path)
    try:
        s = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read score summary {p}: {e}") from None
    if "wer" not in s:
        raise UserError(f"{p}: not an 'asr score' summary.json (no 'wer')")
    ci = s.get("wer_ci")
    kind, decoder = _decoder(p.parent)
    return {"set": label or set_name(p), "kind": kind, "decoder": decoder,
            "utterances": s.get("n_utterances"), "wer": s["wer"], "cer": s.get("cer"),
            "ser": s.get("ser"), "ci": (ci["low"], ci["high"]) if ci else None}


def machine() -> str:
    """``nproc``, CPU model, and the GPU when ``nvidia-smi`` answers: ``nproc 2, AMD EPYC``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = f"nproc {n}, {cpu}"
    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.splitlines()
        gpus = [g.strip() for g in gpus if g.strip()]
        if gpus:
            out += f", GPU {len(gpus)} x {gpus[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def describe_config(path: str | os.PathLike) -> str:
    """One line from a resolved ``config.yaml``: features, model, tokenizer, epochs."""
    from asr.config import load_config

    cfg = load_config(Path(path))  # one-line UserError for a missing or malformed file
    f, m = cfg.features, cfg.model
    direction = "Bi" if m.bidirectional else ""
    return (f"{f.kind} {f.coefficients} @ {f.sample_rate} Hz; "
            f"{m.layers}x{m.hidden} {direction}{m.cell.upper()}, {m.subsampling} "
            f"subsampling x{m.subsample}; {cfg.tokenizer.kind} tokens; epochs {cfg.train.epochs}")


def git_commit(repo: Path) -> str:
    """Short commit hash, ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        h = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=20, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20).stdout.strip()
        return h + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def read_timing(path: str | os.PathLike | None) -> dict[str, float]:
    """Seconds per stage kind from ``stage<TAB>seconds<TAB>what`` lines (recipes/common.sh's
    ``timed``); a later line with the same stage and ``what`` replaces the earlier (a rerun)."""
    last: dict[tuple[str, str], float] = {}
    if path and Path(path).is_file():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) < 2:
                continue
            try:
                last[(parts[0], parts[2] if len(parts) > 2 else "")] = float(parts[1])
            except ValueError:
                continue
    out: dict[str, float] = {}
    for (stage, _), secs in last.items():
        out[stage] = out.get(stage, 0.0) + secs
    return out


def _fmt_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def table(rows: list[dict], mean: bool = False, metric: str = "WER") -> list[str]:
    cols = [c.replace("WER", metric) for c in COLUMNS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        ci = f"{100 * r['ci'][0]:.2f}-{100 * r['ci'][1]:.2f}" if r["ci"] else "-"
        lines.append(f"| {r['set']} | {r['decoder']} | {r['utterances']} | {_pct(r['wer'])} | {ci} "
                     f"| {_pct(r['cer'])} | {_pct(r['ser'])} |")
    if mean:  # one row per decoder kind: tuned LM weights may differ between the rows
        for kind in dict.fromkeys(r["kind"] for r in rows):
            sel = [r for r in rows if r["kind"] == kind]
            avg = {k: sum(r[k] for r in sel) / len(sel) if all(r[k] is not None for r in sel) else None
                   for k in ("wer", "cer", "ser")}
            lines.append(f"| **mean of {len(sel)}** | {kind} | {sum(r['utterances'] or 0 for r in sel)} "
                         f"| **{_pct(avg['wer'])}** | - | {_pct(avg['cer'])} | {_pct(avg['ser'])} |")
    return lines


def render(summaries: list[str], title: str, command: str, labels: list[str] | None = None,
           timing: str | None = None, mean: bool = False, note: str = "",
           config: str | None = None, metric: str = "WER", repo: Path | None = None) -> str:
    """The markdown block: heading, table, provenance lines."""
    if labels and len(labels) != len(summaries):
        raise UserError(f"--labels has {len(labels)} names for {len(summaries)} summaries")
    rows = [row(p, labels[i] if labels else None) for i, p in enumerate(summaries)]
    times = read_timing(timing)
    lines = [f"### {title}", ""] + table(rows, mean, metric) + [""]
    if note:
        lines += [note, ""]
    if config:
        lines.append(f"- model: {describe_config(config)}")
    lines.append(f"- command: `{command}`")
    lines.append(f"- machine: {machine()}")
    lines.append(f"- commit: {git_commit(repo or Path(__file__).resolve().parents[1])}, "
                 f"date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    if times:
        parts = ", ".join(f"{k} {_fmt_seconds(v)}" for k, v in times.items())
        lines.append(f"- wall time: {_fmt_seconds(sum(times.values()))} ({parts})")
    return "\n".join(lines) + "\n"


def update(path: str | os.PathLike, key: str, block: str) -> None:
    """Put ``block`` between ``<!-- results:KEY -->`` markers in ``path``: replace the old block
    with that key, or append one."""
    p = Path(path)
    begin, end = f"<!-- results:{key} -->", f"<!-- /results:{key} -->"
    text = p.read_text(encoding="utf-8") if p.is_file() else ""
    new = f"{begin}\n{block.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: new, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + new + "\n"
    atomic_write_text(p, text if text.endswith("\n") else text + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python recipes/results_table.py",
                                description="Markdown results table from asr score summary.json files.")
    p.add_argument("summaries", nargs="+", metavar="SUMMARY.json")
    p.add_argument("--title", required=True, help="heading of the block")
    p.add_argument("--command", required=True, help="the command that produced the results")
    p.add_argument("--labels", help="comma-separated set names (default: from the folder names)")
    p.add_argument("--timing", help="stage<TAB>seconds<TAB>what file (recipes/common.sh writes one)")
    p.add_argument("--mean", action="store_true", help="add a mean row per decoder")
    p.add_argument("--note", default="", help="a line printed under the table")
    p.add_argument("--config", help="resolved config.yaml of the model, summarised in one line")
    p.add_argument("--metric", default="WER", help="name of the word-level error rate column, "
                   "e.g. PER for phone targets (default WER)")
    p.add_argument("--update", metavar="RESULTS.md", help="refresh the block in this file "
                   "instead of printing it")
    p.add_argument("--key", help="block key for --update (default: the title)")
    a = p.parse_args(argv)
    try:
        block = render(a.summaries, a.title, a.command, a.labels.split(",") if a.labels else None,
                       a.timing, a.mean, a.note, a.config, a.metric)
        if a.update:
            update(a.update, a.key or a.title, block)
            print(f"results table '{a.key or a.title}' written to {a.update}")
        else:
            sys.stdout.write(block)
    except UserError as e:
        print(f"results_table: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
