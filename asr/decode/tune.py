"""``asr decode``: beam-search a manifest (lexicon + n-gram LM), score it, and grid-search the
LM weight, word score and silence score. The model runs once: its log-probs are cached (in
memory, and on disk in the output folder) and every grid point only re-runs the search.

Example:
    asr decode exp/an4/model.pt data/dev.jsonl --lm exp/lm/3gram.arpa \\
        --lexicon exp/lm/lexicon.txt --tune --lm-weights 0,0.5,1,2 --word-scores -1,0,1 \\
        --out exp/an4/decode_dev
    # writes exp/an4/decode.yaml (the best settings), later used by ``asr transcribe``

This module is imported when the CLI parser is built, so torch and the decoders are imported
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

from asr.errors import UserError

DECODE_YAML = "decode.yaml"
BEAM_FLAGS = {  # flag -> (BeamConfig field, type, help)
    "--lexicon": ("lexicon", str, "lexicon file (word t1 t2 ...); omit for lexicon-free search"),
    "--lm": ("lm", str, "n-gram LM, ARPA or KenLM binary (a word LM with --lexicon)"),
    "--beam-size": ("beam_size", int, "hypotheses kept per frame (default 50)"),
    "--beam-size-token": ("beam_size_token", int, "tokens tried per frame (default all)"),
    "--beam-threshold": ("beam_threshold", float, "prune this far below the best (default 25)"),
    "--lm-weight": ("lm_weight", float, "LM weight (default 0.5)"),
    "--word-score": ("word_score", float, "score added per word (default 0)"),
    "--unk-score": ("unk_score", float, "score per out-of-lexicon word (default -inf: none)"),
    "--sil-score": ("sil_score", float, "score per silence token (default 0)"),
}


def add_beam_arguments(p: argparse.ArgumentParser) -> None:
    """Beam search flags shared by ``asr decode`` and ``asr transcribe``; unset flags keep the
    value from ``decode.yaml`` beside the model, or the BeamConfig default."""
    g = p.add_argument_group("beam search (flashlight CTC decoder)")
    for flag, (dest, tp, help_) in BEAM_FLAGS.items():
        g.add_argument(flag, dest=dest, type=tp, default=None, help=help_)
    g.add_argument("--ignore-decode-yaml", action="store_true",
                   help=f"do not read {DECODE_YAML} beside the model")


def decode_yaml_path(model: str | os.PathLike) -> Path:
    return Path(model).parent / DECODE_YAML


def load_beam_config(path: str | os.PathLike):
    """Read a ``decode.yaml``; relative lexicon/LM paths are relative to its folder."""
    import yaml

    from asr.config import from_dict
    from asr.decode.beam import BeamConfig

    p = Path(path)
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read {p}: {str(e).splitlines()[0]}") from None
    cfg = from_dict(BeamConfig, d, prefix=p.name)
    for key in ("lexicon", "lm"):
        value = getattr(cfg, key)
        if value and not os.path.isabs(value):
            setattr(cfg, key, str(p.parent / value))
    return cfg


def save_beam_config(path: str | os.PathLike, cfg) -> None:
    """Write ``cfg`` as ``decode.yaml`` (lexicon/LM paths made absolute)."""
    import yaml

    from asr.manifest import atomic_write_text

    d = dataclasses.asdict(cfg)
    for key in ("lexicon", "lm"):
        if d[key]:
            d[key] = os.path.abspath(d[key])
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False))


def beam_config_from_args(a: argparse.Namespace, model: str | os.PathLike):
    """BeamConfig from ``decode.yaml`` beside ``model`` (if any, unless ignored), then flags.

    Returns:
        (config, whether a decode.yaml was read)
    """
    from asr.decode.beam import BeamConfig

    yaml_path = decode_yaml_path(model)
    found = yaml_path.is_file() and not getattr(a, "ignore_decode_yaml", False)
    base = load_beam_config(yaml_path) if found else BeamConfig()
    over = {dest: getattr(a, dest) for dest, _, _ in BEAM_FLAGS.values()
            if getattr(a, dest, None) is not None}
    if getattr(a, "nbest", None) is not None:
        over["nbest"] = a.nbest
    try:
        return dataclasses.replace(base, **over), found
    except ValueError as e:
        raise UserError(str(e)) from None


def jsonable(cfg) -> dict:
    """A BeamConfig as a JSON-safe dict (infinite scores as strings)."""
    return {k: (str(v) if isinstance(v, float) and math.isinf(v) else v)
            for k, v in dataclasses.asdict(cfg).items()}


def compute_emissions(rec, utts, cache: Path | None = None, key: dict | None = None) -> dict:
    """id -> (T', V) float32 CPU log-probs of every utterance; reused from ``cache`` when its
    stored ``key`` matches, and saved there otherwise."""
    import torch

    from asr.data import eval_batches

    if cache is not None and cache.is_file():
        try:
            obj = torch.load(cache, map_location="cpu", weights_only=True)
            if obj.get("key") == key and set(obj["emissions"]) >= {u.id for u in utts}:
                return obj["emissions"]
        except Exception:  # a stale or broken cache is recomputed
            pass
    out = {}
    rec.model.eval()
    with torch.no_grad():
        for batch in eval_batches(utts, rec.source, 60000, 32):
            log_probs, lens = rec.model(batch.feats.to(rec.device), batch.lens.to(rec.device))
            log_probs = log_probs.float().cpu()  # (B, T', V)
            for b, uid in enumerate(batch.ids):
                out[uid] = log_probs[b, :int(lens[b])].clone()
    if cache is not None:
        from asr.checkpoint import atomic_save

        atomic_save({"key": key, "emissions": out}, cache)
    return out


def decode_all(emissions: dict, ids: list[str], decoder, frame_seconds: float = 0.0) -> dict:
    """id -> n-best Hypotheses; ``frame_seconds`` 0 skips word timing (faster, for tuning)."""
    return {uid: decoder(emissions[uid].unsqueeze(0), None, frame_seconds)[0] for uid in ids}


def score(refs: list[str], hyps: list[str]) -> dict:
    from asr.metrics import char_errors, word_errors

    return {"wer": word_errors(refs, hyps).as_dict(), "cer": char_errors(refs, hyps).as_dict()}


def grid_search(emissions: dict, ids: list[str], refs: list[str], tokenizer, base,
                lm_weights: list[float], word_scores: list[float], log=print,
                sil_scores: list[float] | None = None):
    """Decode with every (lm_weight, word_score, sil_score); return (best config, table of
    results). ``sil_scores`` None keeps ``base.sil_score``. The best has the lowest WER, then CER,
    then the first in grid order."""
    from asr.decode.beam import BeamDecoder

    table, best, best_key = [], base, None
    for ss in sil_scores if sil_scores is not None else [base.sil_score]:
        for lw in lm_weights:
            for ws in word_scores:
                cfg = dataclasses.replace(base, lm_weight=lw, word_score=ws, sil_score=ss,
                                          nbest=1)
                hyps = decode_all(emissions, ids, BeamDecoder(tokenizer, cfg))
                s = score(refs, [hyps[i][0].text for i in ids])
                table.append({"lm_weight": lw, "word_score": ws, "sil_score": ss,
                              "wer": s["wer"]["rate"], "cer": s["cer"]["rate"]})
                log(f"lm_weight {lw:g} word_score {ws:g} sil_score {ss:g}: "
                    f"%WER {100 * s['wer']['rate']:.2f} %CER {100 * s['cer']['rate']:.2f}")
                key = (s["wer"]["rate"], s["cer"]["rate"])
                if best_key is None or key < best_key:
                    best, best_key = dataclasses.replace(cfg, nbest=base.nbest), key
    return best, table


def default_sil_scores(tokenizer) -> list[float] | None:
    """The ``--sil-scores`` grid when none is given: a character model's word boundary ``|`` is
    flashlight's silence token, and penalising it trades split words against merged ones
    (AN4: 11.11% -> 10.38% WER); for other models the silence token is the blank, and None
    keeps the current value (``--sil-score``, decode.yaml or 0)."""
    from asr.decode.beam import silence_token
    from asr.tokenizer import SPACE

    return [0.0, -1.0, -2.0, -3.0] if silence_token(tokenizer) == SPACE else None


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated numbers, got '{text}'") from None
    if not values:
        raise UserError(f"{flag} is empty")
    return values


def add_parser(subparsers) -> None:
    """Register ``asr decode``."""
    p = subparsers.add_parser("decode", help="beam-search decode a manifest (lexicon, LM), "
                              "score it, optionally tune the LM weight and word score")
    p.add_argument("model", help="model file (model.pt)")
    p.add_argument("manifest", help="manifest (JSONL) with reference texts")
    p.add_argument("--out", type=Path, help="output folder (default: next to the model)")
    p.add_argument("--nbest", type=int, default=None, help="hypotheses kept per utterance")
    p.add_argument("--tune", action="store_true",
                   help=f"grid-search --lm-weights x --word-scores; write {DECODE_YAML} beside "
                        "the model")
    p.add_argument("--lm-weights", default="0,0.25,0.5,1,1.5,2", help="grid for --tune")
    p.add_argument("--word-scores", default="-1,0,1,2", help="grid for --tune")
    p.add_argument("--sil-scores", default=None,
                   help="grid for --tune (default 0,-1,-2,-3 for character models, whose word "
                        "boundary is the silence token; else the current --sil-score)")
    p.add_argument("--no-cache", action="store_true", help="do not cache log-probs on disk")
    p.add_argument("--device", default="cpu")
    add_beam_arguments(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """``asr decode``: returns the exit status."""
    from asr.decode.beam import BeamDecoder
    from asr.inference import load_model
    from asr.manifest import atomic_write_text, read_manifest

    rec = load_model(a.model, a.device)
    cfg, _ = beam_config_from_args(a, a.model)
    utts = read_manifest(a.manifest)
    for u in utts:
        u.text = rec.norm(u.text)
    ids, refs = [u.id for u in utts], [u.text for u in utts]
    out = Path(a.out or Path(a.model).parent / f"decode_beam_{Path(a.manifest).stem}")
    out.mkdir(parents=True, exist_ok=True)
    key = {"model": os.path.abspath(a.model), "model_mtime": os.path.getmtime(a.model),
           "manifest": os.path.abspath(a.manifest),
           "manifest_mtime": os.path.getmtime(a.manifest)}
    t0 = time.time()
    emissions = compute_emissions(rec, utts, None if a.no_cache else out / "emissions.pt", key)
    t_model = time.time() - t0
    summary: dict = {"manifest": str(a.manifest), "utterances": len(utts)}
    if a.tune:
        if a.sil_scores is not None:
            sil_scores = parse_floats(a.sil_scores, "--sil-scores")
        elif a.sil_score is not None:  # an explicit --sil-score is kept, not searched
            sil_scores = None
        else:
            sil_scores = default_sil_scores(rec.tokenizer)
        cfg, table = grid_search(emissions, ids, refs, rec.tokenizer, cfg,
                                 parse_floats(a.lm_weights, "--lm-weights"),
                                 parse_floats(a.word_scores, "--word-scores"),
                                 sil_scores=sil_scores)
        atomic_write_text(out / "tune.json", json.dumps(
            {"grid": table, "best": jsonable(cfg)}, indent=2) + "\n")
        save_beam_config(decode_yaml_path(a.model), cfg)
        save_beam_config(out / DECODE_YAML, cfg)
        print(f"best: lm_weight {cfg.lm_weight:g} word_score {cfg.word_score:g} "
              f"sil_score {cfg.sil_score:g}; "
              f"settings written to {decode_yaml_path(a.model)}")
    t0 = time.time()
    hyps = decode_all(emissions, ids, BeamDecoder(rec.tokenizer, cfg), rec.frame_seconds)
    elapsed = time.time() - t0 + t_model
    texts = [hyps[i][0].text for i in ids]
    atomic_write_text(out / "hyp.txt", "".join(f"{i} {t}\n" for i, t in zip(ids, texts)))
    atomic_write_text(out / "ref.txt", "".join(f"{i} {r}\n" for i, r in zip(ids, refs)))
    atomic_write_text(out / "hyps.jsonl", "".join(json.dumps({
        "id": i, "text": hyps[i][0].text, "ref": r, "score": hyps[i][0].score,
        "words": [w._asdict() for w in hyps[i][0].words],
        "nbest": [{"text": h.text, "score": h.score} for h in hyps[i]]}) + "\n"
        for i, r in zip(ids, refs)))
    audio = sum(u.duration for u in utts)
    summary.update({"decoder": {"type": "beam", **jsonable(cfg)}, **score(refs, texts),
                    "audio_seconds": audio, "decode_seconds": elapsed,
                    "real_time_factor": elapsed / audio if audio else None})
    atomic_write_text(out / "wer.json", json.dumps(summary, indent=2) + "\n")
    from asr.evaluate import format_summary

    print(format_summary(summary))
    print(f"hypotheses and scores in {out}")
    return 0
