"""A trained model ready to decode, and the one forward path: audio -> (log_probs, out_lens).

:class:`Recognizer` holds config + tokenizer + CMVN + network, from one model file. Every
command that runs the model (training's dev scoring, ``asr evaluate``, LM tuning, ``asr
transcribe``, the Python API) goes through :meth:`Recognizer.forward`: it pads the model's own
normalised features and returns ``(log_probs (B, T', V), out_lens (B,))`` as float32 on the
CPU. :meth:`Recognizer.emissions` batches manifest utterances by length into it;
:meth:`Recognizer.forward_waves` takes waveforms (long-form chunks). A ``.onnx`` file (written by
``asr export``) is run by ONNX Runtime (:class:`asr.onnx_runtime.OnnxNetwork`) in place of the
PyTorch network, through the same forward path, front-end and decoders.

Legend: B batch, T frames, F features, T' output frames, V vocabulary.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import torch

from asr.checkpoint import FORMAT, VERSION, atomic_save, load_model_file
from asr.config import ExperimentConfig, from_dict, to_dict
from asr.data import FeatureSource, make_batches
from asr.decode.greedy import GreedyDecoder
from asr.decode.types import Hypothesis
from asr.interrupt import check as check_interrupt
from asr.errors import UserError
from asr.manifest import Utterance
from asr.model import CTCModel
from asr.onnx_runtime import OnnxNetwork
from asr.text import TextNorm
from asr.tokenizer import tokenizer_from_dict

MAX_FRAMES = 60000  # padded input frames per forward batch when decoding a manifest
MAX_BATCH = 32  # utterances per forward batch


class Recognizer:
    """Decode audio with a trained CTC model. Build with :func:`asr.load_model`.

    Example:
        >>> model = asr.load_model("exp/an4/model.pt")
        >>> model.transcribe(["a.wav", "b.flac"])
        ['YES', 'GO']

    Attributes:
        path: the model file it was loaded from (None when built in memory); a ``decode.yaml``
            beside it selects beam search, as for ``asr evaluate`` and ``asr transcribe``.
    """

    path: str | None = None
    longest_utterance: float | None = None  # seconds; recorded by training (None: unknown)
    # a model trained with data.vtlp: search each speaker's warp when decoding a manifest
    # (asr.adapt). Off by default: on AN4 dev the search raised the WER (docs/adaptation.md)
    vtln: bool = False
    _searching: bool = False

    def __init__(self, cfg: ExperimentConfig, tokenizer, cmvn: dict[str, torch.Tensor],
                 state: dict[str, torch.Tensor] | None = None, device: str = "cpu",
                 cache_features: bool = False, network: OnnxNetwork | None = None):
        """``cache_features``: keep each utterance's features in memory (training's dev set,
        decoded every epoch). ``network``: run this ONNX network instead of a PyTorch one."""
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.cmvn = cmvn
        self.norm: TextNorm = cfg.text
        self.device = torch.device(device)
        self.model = network if network is not None else CTCModel(
            cfg.model, cfg.features.dim, len(tokenizer.symbols))
        if state is not None:
            self.model.load_state_dict(state)
        self.model.to(self.device).eval()
        self.source = FeatureSource(cfg.features, cmvn, cache=cache_features)

    @property
    def frame_seconds(self) -> float:
        """Duration of one output frame (after subsampling)."""
        return self.cfg.features.hop_ms / 1000.0 * self.cfg.model.subsample

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str = "cpu") -> "Recognizer":
        """A model file written by ``asr train`` (``.pt``) or ``asr export`` (``.onnx``), or a
        combination file of several (``asr combine``: :class:`asr.combine.Combination`)."""
        if is_combination(path):
            from asr.combine import Combination

            return Combination.from_file(path, device)
        network = OnnxNetwork(path) if is_onnx(path) else None
        # every part present: the ONNX file's metadata, or the .pt file (weights only)
        obj = network.metadata if network is not None else load_model_file(path)
        try:
            cfg = from_dict(ExperimentConfig, obj["config"])
        except (UserError, ValueError) as e:  # our own one-line messages
            raise UserError(f"{path}: the model file does not fit this asr ({e})") from None
        tokenizer = load_tokenizer(path, obj)
        dims = {k: tuple(v.shape) for k, v in obj["cmvn"].items()}
        if any(d != (cfg.features.dim,) for d in dims.values()):
            raise UserError(f"{path}: its CMVN statistics {dims} do not fit its "
                            f"{cfg.features.dim} features")
        rec = cls(cfg, tokenizer, obj["cmvn"], None, device, network=network)
        rec.path = os.fspath(path)
        longest = obj.get("longest_utterance")
        rec.longest_utterance = float(longest) if isinstance(longest, (int, float)) else None
        if network is not None:
            return rec
        own, state = rec.model.state_dict(), obj["model"]
        wrong = [k for k in own if k not in state or own[k].shape != state[k].shape]
        extra = [k for k in state if k not in own]
        if wrong or extra:
            first = (wrong or extra)[0]
            raise UserError(f"{path}: its weights do not fit its config ({len(wrong)} missing or "
                            f"of another shape, {len(extra)} unexpected, e.g. '{first}')")
        rec.model.load_state_dict(state)
        return rec

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> None:
        atomic_save({"format": FORMAT, "version": VERSION, "config": to_dict(self.cfg),
                     "tokenizer": self.tokenizer.to_dict(), "cmvn": self.cmvn,
                     "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
                     **({} if self.longest_utterance is None
                        else {"longest_utterance": self.longest_utterance}),
                     **(extra or {})}, path)

    @torch.no_grad()
    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The model over normalised features (each (T_b, F)): padded into one batch.

        Returns:
            (log_probs (B, T', V), out_lens (B,)), float32 and long on the CPU; an input with
            no frames (audio shorter than one analysis window) gets out_len 0.
        """
        self.model.eval()
        lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        if not feats or int(lens.max()) == 0:
            return torch.zeros(len(feats), 0, len(self.tokenizer.symbols)), torch.zeros_like(lens)
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (B, T, F)
        log_probs, out_lens = self.model(x.to(self.device), lens.to(self.device))
        out_lens = torch.where(lens > 0, out_lens.cpu(), torch.zeros_like(lens))
        return log_probs.float().cpu(), out_lens  # (B, T', V), (B,)

    def forward_waves(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` over mono waveforms at the model's sample rate (each (N_b,))."""
        return self.forward([self.source.of_wave(w) for w in waves])

    def emissions(self, utts: list[Utterance], max_frames: int = MAX_FRAMES,
                  max_batch: int = MAX_BATCH) -> Iterator[tuple[list[str], torch.Tensor,
                                                                 torch.Tensor]]:
        """Yield ``(ids, log_probs (B, T', V), out_lens (B,))`` over manifest utterances,
        batched by length so that a batch's padded input stays within ``max_frames``."""
        fcfg = self.cfg.features
        if self.vtln and self.cfg.data.vtlp and not self._searching:
            from asr.adapt import named_speakers, search_warps, warp_grid

            utts = named_speakers(utts)
            self._searching = True
            try:
                warps = search_warps(self, utts, warp_grid(self.cfg.data.vtlp))
            finally:
                self._searching = False
            self.source.warps = warps
        if fcfg.speaker_cmvn:  # each speaker's statistics from all of its utterances here
            self.source.speakers = self.source.speaker_stats(utts)
        frames = [max(1, fcfg.num_frames(int(u.duration * fcfg.sample_rate))) for u in utts]
        for idx in make_batches(frames, max_frames, max_batch, 1, None):
            check_interrupt()  # a Ctrl-C Python dropped is raised here (asr/interrupt.py)
            log_probs, lens = self.forward([self.source(utts[i]) for i in idx])
            yield [utts[i].id for i in idx], log_probs, lens

    def decode_utterances(self, utts: list[Utterance], decoder=None, words: bool = True
                          ) -> dict[str, Hypothesis]:
        """Decode manifest utterances (greedy unless a decoder is given); id -> best Hypothesis.
        ``words`` False skips word timing (training's dev scoring needs only the text)."""
        decoder = decoder or GreedyDecoder(self.tokenizer)
        fs = self.frame_seconds if words else 0.0
        out: dict[str, Hypothesis] = {}
        for ids, log_probs, lens in self.emissions(utts):
            out.update(zip(ids, (nb[0] for nb in decoder(log_probs, lens, fs))))
        return out

    def decoder(self, decoder: str = "auto"):
        """The decoder ``asr evaluate``/``asr transcribe`` use for this model by default
        (:func:`asr.tune.choose_beam`): beam search with the ``decode.yaml`` beside the model
        file when there is one ("auto"), else greedy; "greedy" or "beam" force the choice."""
        from asr.decode.beam import BeamDecoder
        from asr.tune import choose_beam

        beam = choose_beam(self.path, decoder)
        return GreedyDecoder(self.tokenizer) if beam is None else BeamDecoder(self.tokenizer, beam)

    def stream(self, decoder: str = "auto"):
        """A live utterance (:class:`asr.stream.Stream`) of this unidirectional model:
        ``accept(samples) -> partial text``, ``finish() -> Hypothesis``; ``decoder`` as for
        :meth:`decoder` decodes the final hypothesis."""
        from asr.stream import Stream

        return Stream(self, self.decoder(decoder))

    def recognize(self, paths: Iterable[str | os.PathLike], decoder: str = "auto"
                  ) -> list[Hypothesis]:
        """Decode audio files (any format soundfile reads, any rate, any channel count), each
        whole, with :meth:`decoder` (``decoder``: auto, greedy or beam)."""
        from asr.audio import audio_info

        utts = []
        for i, p in enumerate(paths):
            p = os.fspath(p)
            info = audio_info(p)  # fail early, with the file named; reads the header only
            utts.append(Utterance(f"{i:08d}", p, info.duration, "", ""))
        hyps = self.decode_utterances(utts, self.decoder(decoder))
        return [hyps[u.id] for u in utts]

    def transcribe(self, paths: Iterable[str | os.PathLike], decoder: str = "auto") -> list[str]:
        """One text per audio file, in input order."""
        return [h.text for h in self.recognize(paths, decoder)]


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether a model path names an exported ONNX model (by its ``.onnx`` suffix)."""
    return os.fspath(path).lower().endswith(".onnx")


def is_combination(path: str | os.PathLike) -> bool:
    """Whether a model path names a combination file (``asr combine``: ``.yaml``/``.yml``)."""
    return os.fspath(path).lower().endswith((".yaml", ".yml"))


def load_tokenizer(path: str | os.PathLike, obj: dict | None = None):
    """The tokenizer of a model file (``obj``: the file already loaded), one line if damaged;
    a combination's is its members' (the same by construction)."""
    if obj is None and is_combination(path):
        from asr.combine import member_paths

        return load_tokenizer(member_paths(path)[0])
    if obj is None:
        obj = OnnxNetwork(path, 1).metadata if is_onnx(path) else load_model_file(path)
    try:
        return tokenizer_from_dict(obj["tokenizer"])
    except ValueError as e:  # our own message (an unknown kind)
        raise UserError(f"{path}: the model file does not fit this asr ({e})") from None
    except (RuntimeError, KeyError, TypeError):  # e.g. a damaged sentencepiece model
        raise UserError(f"{path}: the model file's tokenizer is damaged") from None


def load_model(path: str | os.PathLike, device: str = "cpu") -> Recognizer:
    """Load a model file written by ``asr train`` (weights only: no code is executed), by
    ``asr export`` (``.onnx``: run by ONNX Runtime on the CPU, with
    ``torch.get_num_threads()`` threads) or by ``asr combine`` (several models decoded as one,
    by posterior averaging)."""
    return Recognizer.from_file(path, device)
