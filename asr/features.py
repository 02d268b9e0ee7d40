"""Waveform -> (T, F) features: log-mel, MFCC, Kaldi fbank; deltas; global CMVN; SpecAugment.

Legend: T frames, F feature dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
import torchaudio.transforms as AT



@dataclass(frozen=True)
class _Kind:
    """What differs between front ends: Kaldi's fbank frames only whole windows (snip_edges,
    shorter audio padded to one window); the others are centred STFTs. MFCC keeps n_mfcc
    cepstra, the others one value per mel band."""

    snip_edges: bool
    cepstral: bool


KINDS = {"fbank": _Kind(snip_edges=True, cepstral=False),
         "logmel": _Kind(snip_edges=False, cepstral=False),
         "mfcc": _Kind(snip_edges=False, cepstral=True)}


@dataclass
class FeatureConfig:
    """Front-end settings, stored with the model.

    Attributes:
        kind: "fbank" (Kaldi-compatible, torchaudio.compliance.kaldi), "logmel" (librosa-style
            slaney mel, natural log) or "mfcc" (DCT of dB mel, like librosa.feature.mfcc).
        sample_rate: the model's rate; audio is resampled to it.
        n_mels: mel bands. n_mfcc: cepstra kept for "mfcc".
        win_ms, hop_ms: analysis window and shift in milliseconds.
        deltas: 0 none, 1 adds deltas, 2 adds deltas and delta-deltas.
        utterance_cmn: subtract each utterance's own mean first (removes recording level and
            channel, e.g. speakers recorded 20 dB apart); global CMVN then applies on top.
        utterance_cvn: also divide by each utterance's own standard deviation (per dimension),
            which evens out how strongly each speaker's features vary; needs utterance_cmn.
        speaker_cmvn: standardise each speaker's features (per-dimension mean and standard
            deviation over all of that speaker's utterances, as Kaldi's per-speaker CMVN,
            ``apply-cmvn --utt2spk``), at training and at test time; global CMVN then applies
            on top. Where no speaker is known (``asr transcribe`` of a file, a stream segment)
            the utterance's own statistics stand in. Excludes utterance_cmn.
    """

    kind: str = "fbank"
    sample_rate: int = 16000
    n_mels: int = 80
    n_mfcc: int = 13
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: int = 0
    utterance_cmn: bool = False
    utterance_cvn: bool = False
    speaker_cmvn: bool = False

    def __post_init__(self) -> None:
        if self.speaker_cmvn and self.utterance_cmn:
            raise ValueError("features.speaker_cmvn and features.utterance_cmn exclude each other")
        if self.utterance_cvn and not self.utterance_cmn:
            raise ValueError("features.utterance_cvn needs features.utterance_cmn: true")
        if self.kind not in KINDS:
            raise ValueError(f"features.kind must be one of {', '.join(KINDS)}, got '{self.kind}'")
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"features.deltas must be 0, 1 or 2, got {self.deltas}")
        if self.sample_rate < 1000 or self.n_mels < 1 or self.hop_ms <= 0 or self.win_ms <= 0:
            raise ValueError("features: sample_rate, n_mels, win_ms and hop_ms must be positive")
        if KINDS[self.kind].cepstral and not 1 <= self.n_mfcc <= self.n_mels:
            raise ValueError(f"features.n_mfcc must be in [1, n_mels={self.n_mels}], "
                             f"got {self.n_mfcc}")

    @property
    def dim(self) -> int:
        return self.coefficients * (1 + self.deltas)

    @property
    def coefficients(self) -> int:
        """Values per frame before deltas: cepstra for MFCC, else mel bands."""
        return self.n_mfcc if KINDS[self.kind].cepstral else self.n_mels

    def num_frames(self, num_samples: int) -> int:
        """Frames the feature extractor yields for ``num_samples`` samples."""
        if KINDS[self.kind].snip_edges:  # shorter audio is padded to one window
            return 1 + max(0, num_samples - self.win_length) // self.hop_length
        return 1 + num_samples // self.hop_length  # centred STFT

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))


def _n_fft(win_length: int) -> int:
    return 1 << (win_length - 1).bit_length()


MAX_WARPS = 1024  # warped mel matrices KaldiFbank keeps (80 x 257 floats each)


class KaldiFbank:
    """Kaldi's fbank as ``torchaudio.compliance.kaldi.fbank`` computes it with dither 0 (povey
    window, pre-emphasis 0.97, DC offset removed, power spectrum, no energy, whole windows only),
    on int16-scaled samples holding whole frames: ``(N,) -> (T, n_mels)``, ``warp`` a VTLN warp
    factor of the mel bins (Kaldi's piecewise-linear warp, as ``vtln_warp``).

    The window and the unwarped mel matrix (torchaudio's own ``get_mel_banks``) are built once
    instead of on every call, the pre-emphasis is one fused subtraction and the power spectrum
    re^2 + im^2: 1.75-2.16x the speed of torchaudio's call on the AN4 dev files, one thread, in
    three runs of ``bench/features.py`` (docs/benchmarks.md, sessions 12 and 13). The
    values equal torchaudio's up to float32 rounding of the FFT, which shows only in the weakest
    bins (up to 2e-3 in log energy on AN4's lowest mel bin; tests/test_features.py).
    """

    def __init__(self, cfg: "FeatureConfig"):
        self.cfg = cfg
        self.win, self.hop = cfg.win_length, cfg.hop_length
        self.n_fft = _n_fft(self.win)
        self.window = kaldi._feature_window_function(
            kaldi.POVEY, self.win, 0.42, torch.device("cpu"), torch.float32)  # (win,)
        self.mel_t = self._banks(1.0)
        self.eps = torch.tensor(torch.finfo(torch.float32).eps)
        # warped mel matrices by warp factor: building one takes longer than the fbank of a
        # 2.5 s utterance (0.68 against 0.52 ms), and training draws its warps from a grid
        # of 0.001 steps (asr.data.draw_wave_aug), so each is built once
        self.warped: dict[float, torch.Tensor] = {}

    def _banks(self, warp: float) -> torch.Tensor:
        """(n_fft/2 + 1, n_mels) mel matrix at VTLN warp ``warp``."""
        banks, _ = kaldi.get_mel_banks(self.cfg.n_mels, self.n_fft, float(self.cfg.sample_rate),
                                       20.0, 0.0, 100.0, -500.0, warp)
        return torch.nn.functional.pad(banks.float(), (0, 1)).T.contiguous()

    def __call__(self, wave: torch.Tensor, warp: float = 1.0) -> torch.Tensor:
        T = 1 + (wave.numel() - self.win) // self.hop
        x = wave.contiguous().as_strided((T, self.win), (self.hop, 1))  # (T, win)
        x = x - x.mean(dim=1, keepdim=True)
        y = x.new_zeros(T, self.n_fft)  # the window's samples, then zeros up to n_fft
        torch.sub(x[:, 1:], x[:, :-1], alpha=0.97, out=y[:, 1:self.win])  # pre-emphasis
        y[:, 0] = x[:, 0] - 0.97 * x[:, 0]
        y[:, :self.win] *= self.window
        spec = torch.fft.rfft(y)  # (T, n_fft/2 + 1)
        power = spec.real.square()
        power.addcmul_(spec.imag, spec.imag)
        if warp == 1.0:
            banks = self.mel_t
        else:
            banks = self.warped.get(warp)
            if banks is None:
                banks = self._banks(warp)
                if len(self.warped) < MAX_WARPS:  # arbitrary warps from elsewhere: uncached
                    self.warped[warp] = banks
        return torch.max(torch.mm(power, banks), self.eps).log_()  # (T, n_mels)


class FeatureExtractor(torch.nn.Module):
    """``(T_samples,)`` float waveform in [-1, 1] -> ``(T, F)`` features."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        n_fft = _n_fft(cfg.win_length)
        melkwargs = dict(n_fft=n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
                         n_mels=cfg.n_mels, norm="slaney", mel_scale="slaney", center=True,
                         pad_mode="constant")  # zero padding at the edges, as librosa does
        self.mel = AT.MelSpectrogram(sample_rate=cfg.sample_rate, power=2.0, **melkwargs)
        self.mfcc = AT.MFCC(sample_rate=cfg.sample_rate, n_mfcc=cfg.n_mfcc, melkwargs=melkwargs)
        self.fbank = KaldiFbank(cfg)

        self._compute = {"fbank": self._fbank, "logmel": self._logmel,
                         "mfcc": self._mfcc}[cfg.kind]

    def _fbank(self, wave: torch.Tensor, warp: float = 1.0) -> torch.Tensor:
        cfg = self.cfg
        if wave.shape[0] < cfg.win_length:  # Kaldi needs one full window: zero-pad
            wave = torch.nn.functional.pad(wave, (0, cfg.win_length - wave.shape[0]))
        # Kaldi works on int16-scaled samples; dither 0 keeps features deterministic.
        return self.fbank(wave * 32768.0, warp)  # (T, F)

    def _logmel(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wave) + 1e-10).T  # (T, F)

    def _mfcc(self, wave: torch.Tensor) -> torch.Tensor:
        return self.mfcc(wave).T  # (T, F)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor, warp: float = 1.0) -> torch.Tensor:
        """``warp``: a VTLN warp factor of the fbank bins (Kaldi's piecewise-linear warp)."""
        cfg = self.cfg
        if warp != 1.0:
            if cfg.kind != "fbank":
                raise ValueError(f"a VTLN warp needs features.kind=fbank, got {cfg.kind}")
            x = self._fbank(wave, warp)
        else:
            x = self._compute(wave)  # (T, F)
        if cfg.deltas:
            parts = [x.T]
            for _ in range(cfg.deltas):
                parts.append(AF.compute_deltas(parts[-1]))
            x = torch.cat(parts, dim=0).T
        if cfg.utterance_cmn:
            x = x - x.mean(dim=0, keepdim=True)
        if cfg.utterance_cvn:
            x = x / (x.pow(2).mean(dim=0, keepdim=True).sqrt() + 1e-5)
        return x.contiguous()


def utterance_cmvn(feats: torch.Tensor) -> torch.Tensor:
    """Standardise ``(T, F)`` features with their own per-dimension mean and deviation (the
    stand-in for speaker statistics where no speaker is known)."""
    mean = feats.mean(dim=0, keepdim=True)
    x = feats - mean
    return x / (x.pow(2).mean(dim=0, keepdim=True).sqrt() + 1e-5)


class GlobalCMVN:
    """Global mean/variance statistics accumulated over the training set."""

    def __init__(self, dim: int):
        self.count = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sumsq = torch.zeros(dim, dtype=torch.float64)

    def accumulate(self, feats: torch.Tensor) -> None:
        f = feats.double()
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.sumsq += (f * f).sum(0)

    def stats(self) -> dict[str, torch.Tensor]:
        """Return ``{"mean", "std"}`` float32 tensors (std floored at 1e-5)."""
        if self.count == 0:
            raise ValueError("CMVN: no frames accumulated")
        mean = self.sum / self.count
        var = (self.sumsq / self.count - mean * mean).clamp_min(1e-10)
        return {"mean": mean.float(), "std": var.sqrt().clamp_min(1e-5).float()}


def apply_cmvn(feats: torch.Tensor, stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """Normalise ``(T, F)`` features with global mean and std."""
    return (feats - stats["mean"]) / stats["std"]


@dataclass
class SpecAugmentConfig:
    """SpecAugment (Park et al. 2019) without time warping.

    Attributes:
        freq_masks: number of frequency masks; freq_width: max width in bins.
        time_masks: number of time masks; time_width: max width in frames;
        time_ratio: a time mask never exceeds this fraction of the utterance.
    """

    freq_masks: int = 2
    freq_width: int = 27
    time_masks: int = 2
    time_width: int = 40
    time_ratio: float = 0.2

    def __post_init__(self) -> None:
        for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
            if getattr(self, key) < 0:
                raise ValueError(f"specaug.{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.time_ratio <= 1:
            raise ValueError(f"specaug.time_ratio must be in [0, 1], got {self.time_ratio}")


def spec_augment(feats: torch.Tensor, cfg: SpecAugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Return a copy of normalised ``(T, F)`` features with masked bands set to 0 (the mean)."""
    x = feats.clone()
    T, F = x.shape
    for _ in range(cfg.freq_masks):
        w = int(torch.randint(0, cfg.freq_width + 1, (1,), generator=gen))
        w = min(w, F)
        f0 = int(torch.randint(0, F - w + 1, (1,), generator=gen))
        x[:, f0:f0 + w] = 0.0
    max_t = min(cfg.time_width, int(cfg.time_ratio * T))
    for _ in range(cfg.time_masks):
        w = int(torch.randint(0, max_t + 1, (1,), generator=gen))
        t0 = int(torch.randint(0, T - w + 1, (1,), generator=gen))
        x[t0:t0 + w, :] = 0.0
    return x
