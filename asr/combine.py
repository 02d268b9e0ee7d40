"""Model combination: several CTC models with the same tokens decoded as one, by posterior averaging.

A combination file (``asr combine A.pt B.pt -o combo.yaml``) is a small YAML file that lists
its member models (paths relative to the file). Wherever a model file is taken (``asr
evaluate``, ``asr transcribe``, ``asr.load_model``) a combination file may stand in:
:class:`Combination` runs every member on the audio through its own front-end (features, CMVN)
and forward path, and averages their per-frame token posteriors,

    log p(k | t) = log( (1/N) * sum_n p_n(k | t) ),

the frame-synchronous combination of hybrid and CTC systems (e.g. Sak et al., "Fast and
accurate recurrent neural network acoustic models for speech recognition", 2015, section 3.3;
ESPnet's and icefall's model averaging is of weights, not of posteriors). The decoders then see
one model: greedy, beam search with an LM, word times. Members must agree on tokens, sample
rate and output frame grid, so that frame t means the same instant for each of them; a
``decode.yaml`` beside the combination file holds its own tuned beam settings.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator

import torch
import yaml

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.inference import Recognizer, is_combination, load_model
from asr.manifest import Utterance

FORMAT = "asr-combination"


def member_paths(path: str | os.PathLike) -> list[Path]:
    """The member model files a combination file lists (resolved beside it), checked."""
    try:
        obj = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such model file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"{path}: not a combination file ({type(e).__name__})") from None
    models = obj.get("models") if isinstance(obj, dict) and obj.get("format") == FORMAT else None
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise UserError(f"{path}: not a combination file written by asr combine "
                        f"(format: {FORMAT}, models: [file, ...])")
    here = Path(path).parent
    out = [(here / m) if not os.path.isabs(m) else Path(m) for m in models]
    for m in out:
        if is_combination(m):
            raise UserError(f"{path}: a member ({m}) is itself a combination file")
    return out


def write_combination(models: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Write the combination file ``out`` listing ``models`` (each checked by loading it, and
    the set checked for compatibility); paths are stored relative to ``out``'s folder."""
    if len(models) < 2:
        raise UserError("asr combine needs at least two model files")
    Combination([load_model(m) for m in models])  # refuses a set that cannot be combined
    out = Path(out)
    rel = [os.path.relpath(os.path.abspath(m), os.path.abspath(out.parent or ".")) for m in models]
    atomic_write_text(out, yaml.safe_dump({"format": FORMAT, "models": rel}, sort_keys=False))
    return out


def average_posteriors(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """``log(mean_n exp(log_probs[n]))`` elementwise; a single input comes back unchanged."""
    if len(log_probs) == 1:
        return log_probs[0]
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


class Combination(Recognizer):
    """Members decoded as one model (posterior averaging); see the module docstring.

    Only what runs from audio is defined: :meth:`emissions` (manifests) and
    :meth:`forward_waves` (long-form chunks), and what is built on them (``decode_utterances``,
    ``recognize``, ``transcribe``, ``decoder``). Features differ per member, so
    :meth:`forward` over given features and streaming are refused."""

    def __init__(self, members: list[Recognizer]):  # noqa: the members own networks and front-ends
        first = members[0]
        for m in members[1:]:
            name = m.path or "a member"
            if list(m.tokenizer.symbols) != list(first.tokenizer.symbols):
                raise UserError(f"{name}: its tokens differ from {first.path}'s; posterior "
                                "averaging needs models with the same token list")
            fa, fb = first.cfg.features, m.cfg.features
            same_grid = (fa.sample_rate, fa.hop_length, fa.win_length,
                         fa.num_frames(16000), first.frame_seconds) == \
                (fb.sample_rate, fb.hop_length, fb.win_length, fb.num_frames(16000), m.frame_seconds)
            if not same_grid:
                raise UserError(f"{name}: its output frames are not {first.path}'s (sample rate, "
                                "window, hop and subsampling must agree to average posteriors)")
        self.members = members
        self.cfg, self.tokenizer, self.cmvn = first.cfg, first.tokenizer, first.cmvn
        self.norm, self.device, self.model, self.source = first.norm, first.device, None, first.source
        known = [m.longest_utterance for m in members if m.longest_utterance is not None]
        self.longest_utterance = min(known) if known else None

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "cpu") -> "Combination":
        rec = cls([load_model(m, device) for m in member_paths(path)])
        rec.path = os.fspath(path)
        return rec

    def forward(self, feats):
        raise TypeError("a Combination runs from audio (emissions, forward_waves): each member "
                        "computes its own features")

    def forward_waves(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.forward_waves(waves) for m in self.members]
        lens = outs[0][1]
        for _, other in outs[1:]:
            if not torch.equal(other, lens):
                raise UserError("the combined models give different numbers of output frames")
        return average_posteriors([lp for lp, _ in outs]), lens

    def emissions(self, utts: list[Utterance], **kw) -> Iterator[tuple[list[str], torch.Tensor,
                                                                        torch.Tensor]]:
        streams = [m.emissions(utts, **kw) for m in self.members]
        for parts in zip(*streams):
            ids, _, lens = parts[0]
            if any(p[0] != ids or not torch.equal(p[2], lens) for p in parts[1:]):
                raise UserError("the combined models batch or frame the utterances differently")
            yield ids, average_posteriors([p[1] for p in parts]), lens

    def stream(self, decoder: str = "auto"):
        raise UserError(f"{self.path}: a model combination cannot stream; give one model")

    def save(self, path, extra=None):
        raise UserError("a combination is a list of model files: write it with asr combine")
