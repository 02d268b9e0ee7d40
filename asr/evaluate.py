"""Decode a manifest with a model and score it: greedy or beam search, optionally tuning the
LM weight, word score and silence score first. Writes hypotheses, the sclite-style report of
``asr score`` (``report/``) and ``wer.json``, all counted by :mod:`asr.scoring`.

The model runs once per manifest (:meth:`Recognizer.emissions`); with beam search its log-probs
are cached in the output folder, so re-decoding or re-tuning does not run the model again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from asr.checkpoint import atomic_save
from asr.decode.beam import BeamConfig, BeamDecoder
from asr.decode.greedy import GreedyDecoder
from asr.errors import UserError
from asr.fileio import atomic_write_text, check_output_dir
from asr.inference import Recognizer
from asr.manifest import Utterance, read_manifest
from asr.scoring import json_ready, score_texts, write_reports
from asr.tune import (DECODE_YAML, TuneGrid, default_sil_scores, grid_search, jsonable,
                      save_beam_config)

EMISSIONS = "emissions.pt"


def manifest_key(model: str | os.PathLike, manifest: str | os.PathLike) -> dict:
    """What cached log-probs depend on: the model file (a combination's members too) and the
    manifest, with their times."""
    from asr.combine import is_combination, member_paths

    members = member_paths(model) if is_combination(model) else []
    return {"model": os.path.abspath(model), "model_mtime": os.path.getmtime(model),
            **({"members": [[os.path.abspath(m), os.path.getmtime(m)] for m in members]}
               if members else {}),
            "manifest": os.path.abspath(manifest), "manifest_mtime": os.path.getmtime(manifest)}


def compute_emissions(rec: Recognizer, utts: list[Utterance], cache: Path | None = None,
                      key: dict | None = None) -> dict[str, torch.Tensor]:
    """id -> (T', V) float32 log-probs of every utterance; reused from ``cache`` when its stored
    ``key`` matches, and saved there otherwise."""
    if cache is not None and cache.is_file():
        try:
            obj = torch.load(cache, map_location="cpu", weights_only=True)
            if obj.get("key") == key and set(obj["emissions"]) >= {u.id for u in utts}:
                return obj["emissions"]
        except Exception:  # a stale or broken cache is recomputed
            pass
    out = {}
    for ids, log_probs, lens in rec.emissions(utts):
        for b, uid in enumerate(ids):
            out[uid] = log_probs[b, :int(lens[b])].clone()
    if cache is not None:
        atomic_save({"key": key, "emissions": out}, cache)
    return out


def evaluate(rec: Recognizer, manifest: str | Path, out_dir: str | Path,
             beam: BeamConfig | None = None, tune: TuneGrid | None = None,
             cache_key: dict | None = None, log=print) -> dict:
    """Decode ``manifest`` (greedy when ``beam`` is None) and score it.

    Writes to ``out_dir``: ``hyp.txt`` (``id text``), ``ref.txt``, ``hyps.jsonl`` (word
    timings, n-best), ``report/`` (asr score's Markdown/HTML/JSON, speakers from the manifest),
    with ``tune`` also ``tune.json`` and ``decode.yaml`` (the best settings), and ``wer.json``
    last. ``cache_key`` (see :func:`manifest_key`) caches the log-probs in ``emissions.pt``.

    Every input is checked, and every utterance decoded, before the first file is written: a
    bad manifest line or audio file leaves ``out_dir`` as it was.

    Returns:
        the summary written to ``wer.json`` (with ``tuned``: the chosen BeamConfig, if tuned).

    Raises:
        UserError: ``out_dir`` (or a folder above it) is a file; a bad or empty manifest;
            missing, unreadable or non-finite audio; tuning without beam search.
    """
    if tune is not None and beam is None:
        raise UserError("tuning needs beam search (an LM to weigh)")
    check_output_dir(out_dir)
    out = Path(out_dir)
    utts = read_manifest(manifest)
    if not utts:
        raise UserError(f"{manifest}: no utterances to evaluate")
    for u in utts:
        u.text = rec.norm(u.text)
    ids, refs = [u.id for u in utts], [u.text for u in utts]
    t0 = time.time()
    emissions = compute_emissions(rec, utts, out / EMISSIONS if cache_key else None, cache_key)
    table = None
    if tune is not None:
        sil = tune.sil_scores if tune.sil_scores is not None else default_sil_scores(rec.tokenizer)
        beam, table = grid_search(emissions, ids, refs, rec.tokenizer, beam, tune.lm_weights,
                                  tune.word_scores, log=log, sil_scores=sil)
        t0 = time.time()  # the decode time below is one pass, as without tuning
    decoder = GreedyDecoder(rec.tokenizer) if beam is None else BeamDecoder(rec.tokenizer, beam)
    hyps = {i: decoder(emissions[i].unsqueeze(0), None, rec.frame_seconds)[0] for i in ids}
    elapsed = time.time() - t0
    texts = [hyps[i][0].text for i in ids]
    result = score_texts(dict(zip(ids, refs)), dict(zip(ids, texts)),
                         speakers={u.id: u.speaker for u in utts},
                         speaker_source="manifest 'speaker' field")
    audio = sum(u.duration for u in utts)
    summary = {"manifest": str(manifest), "utterances": len(utts),
               "decoder": "greedy" if beam is None else {"type": "beam", **jsonable(beam)},
               "wer": result.words.to_dict(), "cer": result.chars.to_dict(), "ser": result.ser,
               "audio_seconds": audio, "decode_seconds": elapsed,
               "real_time_factor": elapsed / audio if audio else None}
    atomic_write_text(out / "hyp.txt", "".join(f"{i} {t}\n" for i, t in zip(ids, texts)))
    atomic_write_text(out / "ref.txt", "".join(f"{i} {r}\n" for i, r in zip(ids, refs)))
    atomic_write_text(out / "hyps.jsonl", "".join(json.dumps({
        "id": i, "text": hyps[i][0].text, "ref": r, "score": hyps[i][0].score,
        "words": [w._asdict() for w in hyps[i][0].words],
        "nbest": [{"text": h.text, "score": h.score} for h in hyps[i]]}) + "\n"
        for i, r in zip(ids, refs)))
    write_reports(result, out / "report")
    if table is not None:
        atomic_write_text(out / "tune.json", json.dumps(
            {"grid": table, "best": jsonable(beam)}, indent=2) + "\n")
        save_beam_config(out / DECODE_YAML, beam)
    atomic_write_text(out / "wer.json", json.dumps(json_ready(summary), indent=2) + "\n")
    return {**summary, "tuned": beam if table is not None else None}


def format_summary(s: dict) -> str:
    """One sclite-like line; a rate against an empty reference (inf, or None in JSON) is 'inf'."""
    def pct(x) -> str:
        return "inf" if x is None or x == float("inf") else f"{100 * x:.2f}"

    w, c = s["wer"], s["cer"]
    return (f"%WER {pct(w['rate'])} [ {w['sub'] + w['dele'] + w['ins']} / {w['ref']}, "
            f"{w['sub']} sub, {w['dele']} del, {w['ins']} ins ]  "
            f"%CER {pct(c['rate'])}  "
            + (f"%SER {pct(s['ser'])}  " if "ser" in s else "")
            + f"({s['utterances']} utterances)")
