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
import torchaudio.compliance.kaldi as kaldi
import torchaudio.transforms as AT

from asr.errors import UserError
from asr.features import KINDS, FeatureExtractor, apply_cmvn


class _DeltaStream:
    """``compute_deltas`` (window 5, replicated edges) over frames that arrive one by one."""

    def __init__(self):
        self.hist: list[torch.Tensor] = []  # x[t-2], x[t-1] (replicas of x[0] at the start)
        self.ahead: list[torch.Tensor] = []  # x[t], x[t+1], x[t+2] not yet emitted

    def _delta(self, xm2, xm1, xp1, xp2) -> torch.Tensor:
        return (xp1 - xm1 + 2.0 * (xp2 - xm2)) / 10.0

    def push(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.hist and not self.ahead:
            self.hist = [x, x]
        self.ahead.append(x)
        out = []
        while len(self.ahead) == 3:
            out.append(self._delta(self.hist[0], self.hist[1], self.ahead[1], self.ahead[2]))
            self.hist = [self.hist[1], self.ahead.pop(0)]
        return out

    def finish(self) -> list[torch.Tensor]:
        out = []
        while self.ahead:
            last = self.ahead[-1]
            nxt = (self.ahead + [last, last])[1:3]
            out.append(self._delta(self.hist[0], self.hist[1], nxt[0], nxt[1]))
            self.hist = [self.hist[1], self.ahead.pop(0)]
        return out


class IncrementalFeatures:
    """Feature frames of a stream of samples at the model's rate, normalised with ``cmvn``."""

    def __init__(self, extractor: FeatureExtractor, cmvn: dict[str, torch.Tensor] | None):
        cfg = extractor.cfg
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
            self.buf = torch.zeros(0)
        if self.hop > self.span:
            raise UserError(f"features with a hop ({cfg.hop_ms} ms) longer than the window "
                            f"({cfg.win_ms} ms) cannot stream")
        self.base = 0  # padded-stream index of buf[0]
        self.samples = 0  # real samples accepted
        self.frames = 0  # raw frames emitted
        self.db_max = -float("inf")  # MFCC: loudest dB value so far
        self.deltas = [_DeltaStream() for _ in range(cfg.deltas)]
        self.pending: list[list[torch.Tensor]] = [[] for _ in range(cfg.deltas + 1)]

    # -- raw frames ----------------------------------------------------------------------------
    def _raw(self, seg: torch.Tensor) -> torch.Tensor:
        """Frames of a padded-stream segment holding whole frames: (T, C)."""
        cfg = self.cfg
        if not self.centred:
            return kaldi.fbank(seg.unsqueeze(0) * 32768.0, num_mel_bins=cfg.n_mels,
                               frame_length=cfg.win_ms, frame_shift=cfg.hop_ms, dither=0.0,
                               energy_floor=0.0, sample_frequency=cfg.sample_rate)
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
        for frame in raw:
            self.pending[0].append(frame)
            level = [frame]
            for k, d in enumerate(self.deltas):
                nxt = []
                for f in level:
                    nxt += d.push(f)
                level = nxt
                self.pending[k + 1] += level
        if final:
            level: list[torch.Tensor] = []
            for k, d in enumerate(self.deltas):
                nxt = []
                for f in level:
                    nxt += d.push(f)
                nxt += d.finish()
                level = nxt
                self.pending[k + 1] += level
        n = min(len(p) for p in self.pending)
        if n == 0:
            return torch.zeros(0, self.cfg.dim)
        rows = [torch.stack(p[:n]) for p in self.pending]
        self.pending = [p[n:] for p in self.pending]
        x = torch.cat(rows, dim=1) if len(rows) > 1 else rows[0]
        return apply_cmvn(x, self.cmvn) if self.cmvn is not None else x

    @torch.no_grad()
    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Append ``samples`` (N,) float in [-1, 1]; return the frames now complete: (T, F)."""
        samples = samples.reshape(-1).float()
        self.buf = torch.cat([self.buf, samples])
        self.samples += samples.numel()
        return self._out(self._take(self._available()), final=False)

    @torch.no_grad()
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
