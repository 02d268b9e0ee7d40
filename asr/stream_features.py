"""Incremental front-end: samples in, the offline extractor's feature frames out as soon as
their samples have arrived (Kaldi fbank, log-mel, MFCC; deltas; global CMVN).

:class:`IncrementalFeatures` gives, over any split of a waveform into chunks (down to one
sample), the frames :class:`asr.features.FeatureExtractor` computes on the whole waveform:
- fbank frames only whole windows (``snip_edges``): frame i is samples [i*hop, i*hop + win);
- log-mel and MFCC are centred STFTs with zero padding of n_fft/2 at both ends: frame i is
  the padded samples [i*hop, i*hop + n_fft), so it waits for n_fft/2 samples of look-ahead,
  and the last frames come at :meth:`finish`, which appends the end padding;
- deltas (torchaudio's ``compute_deltas``, window 5, edges replicated) wait two frames per order.
One exception: torchaudio's MFCC clips every dB value at 80 dB under the loudest value of the
whole utterance; streaming clips at 80 dB under the loudest value heard so far, which is the
same once the loudest frame has arrived (and until then only for values within 80 dB of it).
Per-utterance mean/variance normalisation (``features.utterance_cmn``) needs the whole
utterance and cannot stream.

Legend: N samples, T frames, C coefficients per frame, F features (C times 1 + deltas).
"""

from __future__ import annotations

import torch
import torchaudio.transforms as AT

from asr.errors import UserError
from asr.features import KINDS, FeatureExtractor, KaldiFbank, apply_cmvn


class _DeltaStream:
    """``compute_deltas`` (window 5, replicated edges) over (T, C) frames that arrive in chunks:
    the offline convolution, run over each chunk with its two frames of context either side."""

    def __init__(self, dim: int):
        self.dim = dim
        self.kernel = torch.arange(-2.0, 3.0).repeat(dim, 1, 1)  # (C, 1, 5); denominator 10
        # (<= 4, C): x[t-2], x[t-1], then the frames not yet emitted
        self.ctx: torch.Tensor | None = None

    def _deltas(self, x: torch.Tensor) -> torch.Tensor:
        """(T + 4, C) frames -> (T, C) deltas of the T middle ones."""
        if x.shape[0] < 5:
            return x.new_zeros(0, self.dim)
        y = torch.nn.functional.conv1d(x.T.unsqueeze(0), self.kernel, groups=self.dim) / 10.0
        return y[0].T

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """(T, C) new frames -> (T', C) deltas now complete (two frames behind)."""
        if x.shape[0] == 0:
            return x
        if self.ctx is None:
            self.ctx = x[:1].expand(2, -1)  # left edge replicated
        buf = torch.cat([self.ctx, x])
        self.ctx = buf[-4:]
        return self._deltas(buf)

    def finish(self) -> torch.Tensor:
        """The deltas of the last (up to) two frames, right edge replicated: (T', C)."""
        if self.ctx is None:
            return torch.zeros(0, self.dim)
        buf = torch.cat([self.ctx, self.ctx[-1:].expand(2, -1)])
        self.ctx = None
        return self._deltas(buf)


class IncrementalFeatures:
    """Feature frames of a stream of samples at the model's rate, normalised with ``cmvn``."""

    def __init__(self, extractor: FeatureExtractor, cmvn: dict[str, torch.Tensor] | None):
        cfg = extractor.cfg
        if cfg.speaker_cmvn:
            raise UserError("this model normalises each speaker by statistics over all of the "
                            "speaker's audio (features.speaker_cmvn): it cannot stream")
        if cfg.utterance_cmn:
            raise UserError("this model normalises each utterance by its own mean "
                            "(features.utterance_cmn), which needs the whole utterance: it cannot stream")
        self.cfg, self.cmvn, self.ext = cfg, cmvn, extractor
        self.centred = not KINDS[cfg.kind].snip_edges
        self.hop = cfg.hop_length
        if self.centred:
            mel = extractor.mel
            self.pad = mel.n_fft // 2
            self.span = mel.n_fft  # samples per frame, in padded coordinates
            self.mel = AT.MelSpectrogram(
                sample_rate=cfg.sample_rate, n_fft=mel.n_fft, win_length=mel.win_length,
                hop_length=self.hop, n_mels=cfg.n_mels, norm="slaney", mel_scale="slaney",
                power=2.0, center=False)
            self.buf = torch.zeros(self.pad)  # the start padding
        else:
            self.pad, self.span = 0, cfg.win_length
            self.fbank = KaldiFbank(cfg)
            self.buf = torch.zeros(0)
        if self.hop > self.span:
            raise UserError(f"features with a hop ({cfg.hop_ms} ms) longer than the window "
                            f"({cfg.win_ms} ms) cannot stream")
        self.base = 0  # padded-stream index of buf[0]
        self.samples = 0  # real samples accepted
        self.frames = 0  # raw frames emitted
        self.db_max = -float("inf")  # MFCC: loudest dB value so far
        self.deltas = [_DeltaStream(cfg.coefficients) for _ in range(cfg.deltas)]
        # per level (raw, delta, delta-delta...): frames made but not yet emitted
        self.pending: list[list[torch.Tensor]] = [[] for _ in range(cfg.deltas + 1)]

    # -- raw frames ----------------------------------------------------------------------------
    def _raw(self, seg: torch.Tensor) -> torch.Tensor:
        """Frames of a padded-stream segment holding whole frames: (T, C)."""
        cfg = self.cfg
        if not self.centred:
            return self.fbank(seg * 32768.0)
        power = self.mel(seg)  # (n_mels, T)
        if not KINDS[cfg.kind].cepstral:  # log-mel
            return torch.log(power + 1e-10).T
        mfcc = self.ext.mfcc
        db = 10.0 * torch.log10(torch.clamp(power, min=1e-10))  # AmplitudeToDB("power")
        self.db_max = max(self.db_max, float(db.max()))
        top = mfcc.amplitude_to_DB.top_db
        if top is not None:
            db = torch.clamp(db, min=self.db_max - top)
        return torch.matmul(db.T, mfcc.dct_mat)  # (T, n_mfcc)

    def _take(self, upto: int) -> torch.Tensor:
        """Raw frames ``self.frames`` .. ``upto - 1`` from the buffer; drops samples no longer needed."""
        n = upto - self.frames
        if n <= 0:
            return torch.zeros(0, self.cfg.coefficients)
        start = self.frames * self.hop - self.base
        seg = self.buf[start:start + (n - 1) * self.hop + self.span]
        raw = self._raw(seg)
        self.frames = upto
        keep_from = self.frames * self.hop - self.base
        self.buf, self.base = self.buf[keep_from:], self.base + keep_from
        return raw

    def _available(self) -> int:
        total = self.pad + self.samples  # padded-stream samples known
        return 0 if total < self.span else 1 + (total - self.span) // self.hop

    # -- deltas, CMVN --------------------------------------------------------------------------
    def _out(self, raw: torch.Tensor, final: bool) -> torch.Tensor:
        """Raw frames (T, C) in; the feature frames whose deltas are all complete out: (T', F)."""
        level = raw
        self.pending[0].append(level)
        for k, d in enumerate(self.deltas):
            level = d.push(level)
            if final:
                level = torch.cat([level, d.finish()])
            self.pending[k + 1].append(level)
        parts = [torch.cat(p) if len(p) > 1 else p[0] for p in self.pending]
        n = min(p.shape[0] for p in parts)
        self.pending = [[p[n:]] for p in parts]
        if n == 0:
            return torch.zeros(0, self.cfg.dim)
        x = torch.cat([p[:n] for p in parts], dim=1) if len(parts) > 1 else parts[0][:n]
        return apply_cmvn(x, self.cmvn) if self.cmvn is not None else x

    @torch.inference_mode()
    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Append ``samples`` (N,) float in [-1, 1]; return the frames now complete: (T, F)."""
        samples = samples.reshape(-1).float()
        self.buf = torch.cat([self.buf, samples])
        self.samples += samples.numel()
        return self._out(self._take(self._available()), final=False)

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """The last frames (end padding, replicated delta edges): (T, F). Resets nothing."""
        cfg = self.cfg
        if self.centred:
            self.buf = torch.cat([self.buf, torch.zeros(self.pad)])
            raw = self._take(1 + self.samples // self.hop)
        elif self.frames == 0:  # shorter than one window: the offline extractor pads it
            self.buf = torch.nn.functional.pad(self.buf, (0, max(0, cfg.win_length - self.buf.numel())))
            self.samples = max(self.samples, cfg.win_length)
            raw = self._take(1)
        else:
            raw = torch.zeros(0, cfg.coefficients)
        return self._out(raw, final=True)
