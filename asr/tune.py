"""LM tuning: grid-search the beam decoder's LM weight, word score and silence score on a dev
set's cached log-probs (the model runs once; each grid point re-runs only the search), and the
tuned settings on disk (``decode.yaml`` beside the model), which decide how a model decodes.

Example:
    >>> best, table = grid_search(emissions, ids, refs, rec.tokenizer, BeamConfig(lm="3gram.arpa",
    ...                           lexicon="lexicon.txt"), [0, 0.5, 1, 2], [-1, 0, 1])
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from asr.config import from_dict
from asr.decode.beam import BeamConfig, BeamDecoder, silence_token
from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.scoring import error_counts


@dataclass
class TuneGrid:
    """The values tried. ``sil_scores`` None keeps the base config's silence score."""

    lm_weights: list[float] = dataclasses.field(
        default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 1.5, 2.0])
    word_scores: list[float] = dataclasses.field(default_factory=lambda: [-1.0, 0.0, 1.0, 2.0])
    sil_scores: list[float] | None = None

    def __post_init__(self) -> None:
        for name in ("lm_weights", "word_scores", "sil_scores"):
            if getattr(self, name) == []:
                raise UserError(f"the {name.replace('_', ' ')} grid is empty")


def default_sil_scores(tokenizer) -> list[float] | None:
    """The silence-score grid when none is given: for a model whose word separator is
    flashlight's silence token (character models' ``|``), penalising it trades split words
    against merged ones (AN4: 11.11% -> 10.38% WER); for other models the silence token is the
    blank, and None keeps the current value (``--sil-score``, decode.yaml or 0)."""
    return [0.0, -1.0, -2.0, -3.0] if silence_token(tokenizer) == tokenizer.separator else None


def grid_search(emissions: dict, ids: list[str], refs: list[str], tokenizer, base: BeamConfig,
                lm_weights: list[float], word_scores: list[float], log=print,
                sil_scores: list[float] | None = None) -> tuple[BeamConfig, list[dict]]:
    """Decode with every (lm_weight, word_score, sil_score); return (best config, table of
    results). ``emissions``: id -> (T', V) log-probs. ``sil_scores`` None keeps
    ``base.sil_score``. The best has the lowest WER, then CER, then the first in grid order."""
    table, best, best_key = [], base, None
    for ss in sil_scores if sil_scores is not None else [base.sil_score]:
        for lw in lm_weights:
            for ws in word_scores:
                cfg = dataclasses.replace(base, lm_weight=lw, word_score=ws, sil_score=ss,
                                          nbest=1)
                decoder = BeamDecoder(tokenizer, cfg)
                texts = [decoder(emissions[i].unsqueeze(0))[0][0].text for i in ids]
                words, chars = error_counts(refs, texts)
                table.append({"lm_weight": lw, "word_score": ws, "sil_score": ss,
                              "wer": words.rate, "cer": chars.rate})
                log(f"lm_weight {lw:g} word_score {ws:g} sil_score {ss:g}: "
                    f"%WER {100 * words.rate:.2f} %CER {100 * chars.rate:.2f}")
                key = (words.rate, chars.rate)
                if best_key is None or key < best_key:
                    best, best_key = dataclasses.replace(cfg, nbest=base.nbest), key
    return best, table


# --- decode.yaml: the tuned BeamConfig on disk, beside the model ----------------------------

DECODE_YAML = "decode.yaml"


def decode_yaml_path(model: str | os.PathLike) -> Path:
    """Where the tuned settings of ``model`` live: ``decode.yaml`` in its folder."""
    return Path(model).parent / DECODE_YAML


def load_beam_config(path: str | os.PathLike) -> BeamConfig:
    """Read a ``decode.yaml``; relative lexicon/LM paths are relative to its folder."""
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


def save_beam_config(path: str | os.PathLike, cfg: BeamConfig) -> None:
    """Write ``cfg`` as ``decode.yaml`` (lexicon/LM paths made absolute)."""
    d = asdict(cfg)
    for key in ("lexicon", "lm"):
        if d[key]:
            d[key] = os.path.abspath(d[key])
    atomic_write_text(path, yaml.safe_dump(d, sort_keys=False))


def jsonable(cfg: BeamConfig) -> dict:
    """A BeamConfig as a JSON-safe dict (infinite scores as strings)."""
    return {k: (str(v) if isinstance(v, float) and math.isinf(v) else v)
            for k, v in asdict(cfg).items()}


DECODERS = ("auto", "greedy", "beam")


def choose_beam(model: str | os.PathLike | None, decoder: str = "auto",
                overrides: dict | None = None, ignore_yaml: bool = False) -> BeamConfig | None:
    """The one rule for which decoder a model file decodes with (``asr evaluate``, ``asr
    transcribe`` and the Python API alike): None for greedy decoding, else the BeamConfig.

    ``decode.yaml`` beside ``model`` (unless ``ignore_yaml``) is read first, then ``overrides``
    (BeamConfig fields) apply. ``decoder="auto"`` picks beam search when a decode.yaml was read
    or the overrides name an LM or a lexicon; "greedy" and "beam" force the choice.
    """
    if decoder not in DECODERS:
        raise UserError(f"decoder must be one of {', '.join(DECODERS)}, got '{decoder}'")
    if decoder == "greedy":
        return None
    path = decode_yaml_path(model) if model is not None else None
    found = path is not None and path.is_file() and not ignore_yaml
    base = load_beam_config(path) if found else BeamConfig()
    try:
        cfg = dataclasses.replace(base, **(overrides or {}))
    except ValueError as e:
        raise UserError(str(e)) from None
    if decoder == "auto" and not (found or cfg.lm or cfg.lexicon):
        return None
    return cfg
