"""Decode a manifest with a model and score it: hypotheses, WER/CER with S/D/I counts, and the
same sclite-style report as ``asr score`` (report.md, report.html, summary.json in ``report/``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from asr.errors import UserError
from asr.inference import Recognizer
from asr.manifest import atomic_write_text, check_output_dir, read_manifest
from asr.metrics import char_errors, word_errors
from asr.scoring import score_texts, write_reports


def evaluate(rec: Recognizer, manifest: str | Path, out_dir: str | Path) -> dict:
    """Greedy-decode ``manifest``; write ``hyp.txt`` (``id text``), ``hyps.jsonl`` (with word
    timings), ``report/`` (asr score's Markdown/HTML/JSON report, speakers from the manifest)
    and ``wer.json`` to ``out_dir``; return the summary dict.

    Every input is checked, and every utterance decoded, before the first file is written: a
    bad manifest line or audio file leaves ``out_dir`` as it was. Each file is written
    atomically, ``wer.json`` last.

    Raises:
        UserError: ``out_dir`` (or a folder above it) is a file; a bad or empty manifest;
            missing, unreadable or non-finite audio.
    """
    check_output_dir(out_dir)
    utts = read_manifest(manifest)
    if not utts:
        raise UserError(f"{manifest}: no utterances to evaluate")
    for u in utts:
        u.text = rec.norm(u.text)
    t0 = time.time()
    hyps = rec.decode_utterances(utts)
    elapsed = time.time() - t0
    out = Path(out_dir)
    refs = [u.text for u in utts]
    texts = [hyps[u.id].text for u in utts]
    atomic_write_text(out / "hyp.txt", "".join(f"{u.id} {t}\n" for u, t in zip(utts, texts)))
    atomic_write_text(out / "ref.txt", "".join(f"{u.id} {u.text}\n" for u in utts))
    atomic_write_text(out / "hyps.jsonl", "".join(json.dumps({
        "id": u.id, "text": hyps[u.id].text, "ref": u.text, "score": hyps[u.id].score,
        "words": [w._asdict() for w in hyps[u.id].words]}) + "\n" for u in utts))
    audio = sum(u.duration for u in utts)
    summary = {"manifest": str(manifest), "utterances": len(utts), "decoder": "greedy",
               "wer": word_errors(refs, texts).as_dict(), "cer": char_errors(refs, texts).as_dict(),
               "audio_seconds": audio, "decode_seconds": elapsed,
               "real_time_factor": elapsed / audio if audio else None}
    result = score_texts({u.id: u.text for u in utts}, {u.id: t for u, t in zip(utts, texts)},
                         speakers={u.id: u.speaker for u in utts},
                         speaker_source="manifest 'speaker' field")
    summary["ser"] = result.ser
    write_reports(result, out / "report")
    atomic_write_text(out / "wer.json", json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(s: dict) -> str:
    w, c = s["wer"], s["cer"]
    return (f"%WER {100 * w['rate']:.2f} [ {w['sub'] + w['dele'] + w['ins']} / {w['ref']}, "
            f"{w['sub']} sub, {w['dele']} del, {w['ins']} ins ]  "
            f"%CER {100 * c['rate']:.2f}  "
            + (f"%SER {100 * s['ser']:.2f}  " if "ser" in s else "")
            + f"({s['utterances']} utterances)")
