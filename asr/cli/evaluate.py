"""``asr evaluate`` (and its alias ``asr decode``, beam search by default): decode a manifest,
greedy or beam search, optionally tuning the LM weight, word and silence scores first, and
score it."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import add_decoder_arguments
from asr.errors import UserError


def add_parser(sub) -> None:
    _register(sub, "evaluate", "auto", "decode a manifest (greedy or beam search, optionally "
              "tuned) and report WER/CER")


def add_decode_parser(sub) -> None:
    _register(sub, "decode", "beam", "asr evaluate with beam search by default")


def _register(sub, name: str, decoder: str, help_: str) -> None:
    p = sub.add_parser(name, help=help_)
    p.add_argument("model", help="model file (model.pt, or model.onnx from asr export)")
    p.add_argument("manifest", help="manifest (JSONL) with reference texts")
    p.add_argument("--out", type=Path, help="output folder (default: next to the model)")
    p.add_argument("--device", default="cpu")
    add_decoder_arguments(p, decoder)
    g = p.add_argument_group("tuning (beam search)")
    g.add_argument("--tune", action="store_true",
                   help="grid-search --lm-weights x --word-scores x --sil-scores, decode with "
                        "the best, and write it to decode.yaml beside the model")
    g.add_argument("--lm-weights", default="0,0.25,0.5,1,1.5,2", help="grid for --tune")
    g.add_argument("--word-scores", default="-1,0,1,2", help="grid for --tune")
    g.add_argument("--sil-scores", default=None,
                   help="grid for --tune (default 0,-1,-2,-3 for character models, whose word "
                        "boundary is the silence token; else the current --sil-score)")
    g.add_argument("--no-cache", action="store_true",
                   help="beam search: do not cache the log-probs in the output folder")
    p.add_argument("--vtln", action="store_true",
                   help="a model trained with data.vtlp: search each speaker's warp factor "
                        "(asr.adapt; experimental: it raised the WER on AN4 dev)")
    p.set_defaults(func=run, out_prefix="decode_" if name == "evaluate" else "decode_beam_")


def run(a: argparse.Namespace) -> int:
    from asr.cli.common import beam_config, check_device, parse_floats
    from asr.evaluate import evaluate, format_summary, manifest_key
    from asr.inference import load_model
    from asr.tune import TuneGrid, decode_yaml_path, save_beam_config

    check_device(a.device)
    if a.tune and a.decoder == "greedy":
        raise UserError("--tune searches beam-search settings: it cannot go with --decoder greedy")
    rec = load_model(a.model, a.device)
    for member in getattr(rec, "members", [rec]):
        member.vtln = a.vtln
    beam = beam_config(a, a.model, "beam" if a.tune else None)
    tune = None
    if a.tune:
        if not beam.lm:
            raise UserError("--tune needs a language model to weigh (--lm, or one in decode.yaml)")
        sil = (parse_floats(a.sil_scores, "--sil-scores") if a.sil_scores is not None
               else [beam.sil_score] if a.sil_score is not None  # an explicit value is kept
               else None)
        tune = TuneGrid(parse_floats(a.lm_weights, "--lm-weights"),
                        parse_floats(a.word_scores, "--word-scores"), sil)
    out = a.out or Path(a.model).parent / f"{a.out_prefix}{Path(a.manifest).stem}"
    key = manifest_key(a.model, a.manifest) if beam is not None and not a.no_cache else None
    if key is not None and a.vtln:
        key["vtln"] = True  # other log-probs than an unwarped decode's
    summary = evaluate(rec, a.manifest, out, beam, tune, cache_key=key)
    if summary["tuned"] is not None:
        best = summary["tuned"]
        save_beam_config(decode_yaml_path(a.model), best)
        print(f"best: lm_weight {best.lm_weight:g} word_score {best.word_score:g} "
              f"sil_score {best.sil_score:g}; settings written to {decode_yaml_path(a.model)}")
    print(format_summary(summary))
    print(f"hypotheses and scores in {out}")
    return 0
