"""What several subcommands parse alike: checked number types, ``--device``, the beam-search
flags (merged with a ``decode.yaml`` beside the model into a typed :class:`BeamConfig`), and the
``--decoder auto|greedy|beam`` choice."""

from __future__ import annotations

import argparse
import math
import os

from asr.errors import UserError


def _number(kind: type, lo: float, strict: bool):
    """argparse type: a finite ``kind`` above ``lo`` (``strict``) or at least ``lo``."""
    want = f"{'>' if strict else '>='} {lo:g}"

    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__} {want}, got {text!r}"
                                             ) from None
        if not math.isfinite(v) or v < lo or (strict and v == lo):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT, NONNEG_INT = _number(int, 0, True), _number(int, 0, False)
POSITIVE_FLOAT, NONNEG_FLOAT = _number(float, 0, True), _number(float, 0, False)


def check_device(name: str, allow_auto: bool = False) -> None:
    """--device: cpu, cuda or cuda:N (and auto for training), and CUDA must be there."""
    import torch

    if allow_auto and name == "auto":
        return
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: expected {'auto, ' if allow_auto else ''}cpu, "
                        "cuda or cuda:N")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= n:
            raise UserError(f"--device {name}: this machine has {n} CUDA device(s)")


BEAM_FLAGS = {  # flag -> (BeamConfig field, type, help)
    "--lexicon": ("lexicon", str, "lexicon file (word t1 t2 ...); omit for lexicon-free search"),
    "--lm": ("lm", str, "n-gram LM, ARPA or KenLM binary (a word LM with --lexicon)"),
    "--beam-size": ("beam_size", int, "hypotheses kept per frame (default 50)"),
    "--beam-size-token": ("beam_size_token", int, "tokens tried per frame, 0 for all (default 8)"),
    "--beam-threshold": ("beam_threshold", float, "prune this far below the best (default 10)"),
    "--lm-weight": ("lm_weight", float, "LM weight (default 0.5)"),
    "--word-score": ("word_score", float, "score added per word (default 0)"),
    "--unk-score": ("unk_score", float, "score per out-of-lexicon word (default -inf: none)"),
    "--sil-score": ("sil_score", float, "score per silence token (default 0)"),
}


def add_decoder_arguments(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--decoder`` and the beam search flags shared by ``asr evaluate`` and ``asr
    transcribe``; unset flags keep the value from ``decode.yaml`` beside the model, or the
    BeamConfig default."""
    p.add_argument("--decoder", default=default, choices=["auto", "greedy", "beam"],
                   help="auto: beam search when --lm/--lexicon is given or a decode.yaml lies "
                        f"beside the model (default {default})")
    g = p.add_argument_group("beam search (flashlight CTC decoder)")
    for flag, (dest, tp, help_) in BEAM_FLAGS.items():
        g.add_argument(flag, dest=dest, type=tp, default=None, help=help_)
    g.add_argument("--nbest", type=int, default=None,
                   help="hypotheses kept per utterance (a long list wants a wider search: "
                        "--beam-size-token 0 --beam-threshold 25)")
    g.add_argument("--ignore-decode-yaml", action="store_true",
                   help="do not read decode.yaml beside the model")


def beam_config(a: argparse.Namespace, model: str | os.PathLike, decoder: str | None = None):
    """The BeamConfig that ``a`` asks for, or None for greedy decoding: the flags as overrides
    of :func:`asr.tune.choose_beam` (``decoder`` replaces ``--decoder``)."""
    from asr.tune import choose_beam

    over = {dest: getattr(a, dest) for dest, _, _ in BEAM_FLAGS.values()
            if getattr(a, dest) is not None}
    if a.nbest is not None:
        over["nbest"] = a.nbest
    return choose_beam(model, decoder or a.decoder, over, a.ignore_decode_yaml)


def parse_floats(text: str, flag: str) -> list[float]:
    """A comma-separated list of numbers (a tuning grid)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{flag} must be comma-separated numbers, got '{text}'") from None
    if not values:
        raise UserError(f"{flag} is empty")
    return values
