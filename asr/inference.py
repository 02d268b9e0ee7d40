"""A trained model ready to decode: config + tokenizer + CMVN + network, from one model file."""

from __future__ import annotations

import os
from typing import Iterable

import torch

from asr.checkpoint import FORMAT, VERSION, atomic_save, load_model_file
from asr.config import ExperimentConfig, from_dict, to_dict
from asr.data import FeatureSource, eval_batches
from asr.decode.greedy import greedy_decode
from asr.decode.types import Hypothesis
from asr.errors import UserError
from asr.manifest import Utterance
from asr.model import CTCModel
from asr.tokenizer import TextNorm, tokenizer_from_dict


class Recognizer:
    """Decode audio with a trained CTC model. Build with :func:`asr.load_model`.

    Example:
        >>> model = asr.load_model("exp/an4/model.pt")
        >>> model.transcribe(["a.wav", "b.flac"])
        ['YES', 'GO']
    """

    def __init__(self, cfg: ExperimentConfig, tokenizer, cmvn: dict[str, torch.Tensor],
                 state: dict[str, torch.Tensor] | None = None, device: str = "cpu"):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.cmvn = cmvn
        self.norm: TextNorm = cfg.text
        self.device = torch.device(device)
        self.model = CTCModel(cfg.model, cfg.features.dim, len(tokenizer.symbols))
        if state is not None:
            self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.source = FeatureSource(cfg.features, cmvn, cache=False)

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame (after subsampling)."""
        return self.cfg.features.hop_ms / 1000.0 * self.cfg.model.subsample

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "cpu") -> "Recognizer":
        obj = load_model_file(path)  # weights only, every part present
        try:
            cfg = from_dict(ExperimentConfig, obj["config"])
            return cls(cfg, tokenizer_from_dict(obj["tokenizer"]), obj["cmvn"], obj["model"],
                       device)
        except (UserError, ValueError, KeyError, RuntimeError) as e:  # e.g. weights that do
            msg = " ".join(str(e).split())  # not fit the config: one line, the file named
            raise UserError(f"{path}: the model file does not fit this asr ({msg[:300]})"
                            ) from None

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        atomic_save({"format": FORMAT, "version": VERSION, "config": to_dict(self.cfg),
                     "tokenizer": self.tokenizer.to_dict(), "cmvn": self.cmvn,
                     "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                     **(extra or {})}, path)

    @torch.no_grad()
    def decode_utterances(self, utts: list[Utterance], max_frames: int = 60000,
                          max_batch: int = 32) -> dict[str, Hypothesis]:
        """Greedy-decode manifest utterances; returns id -> Hypothesis."""
        self.model.eval()
        out: dict[str, Hypothesis] = {}
        for batch in eval_batches(utts, self.source, max_frames, max_batch):
            log_probs, lens = self.model(batch.feats.to(self.device), batch.lens.to(self.device))
            for uid, hyp in zip(batch.ids, greedy_decode(log_probs.cpu(), lens.cpu(),
                                                          self.tokenizer, self.frame_seconds)):
                out[uid] = hyp
        return out

    def recognize(self, paths: Iterable[str | os.PathLike]) -> list[Hypothesis]:
        """Decode audio files (any format soundfile reads, any rate, any channel count)."""
        from asr.audio import audio_info

        utts = []
        for i, p in enumerate(paths):
            p = os.fspath(p)
            info = audio_info(p)  # fail early, with the file named; reads the header only
            utts.append(Utterance(f"{i:08d}", p, info.duration, "", ""))
        hyps = self.decode_utterances(utts)
        return [hyps[u.id] for u in utts]

    def transcribe(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        """One text per audio file, in input order."""
        return [h.text for h in self.recognize(paths)]


def load_model(path: str | os.PathLike, device: str = "cpu") -> Recognizer:
    """Load a model file written by ``asr train`` (weights only: no code is executed)."""
    return Recognizer.from_file(path, device)
