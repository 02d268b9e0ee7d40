"""Acoustic model: subsampling front-end -> stacked (bi)LSTM/GRU/tanh-RNN -> linear CTC head.

Legend: B batch, T input frames, T' frames after subsampling, F features, D hidden width,
V vocabulary (blank = 0). The model returns log-probs and lengths and nothing else; the loss,
decoders and optimiser live elsewhere.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn as nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class ModelConfig:
    """Acoustic model shape.

    Attributes:
        cell: "lstm", "gru" or "rnn" (plain tanh RNN).
        hidden: units per direction; layers: stacked recurrent layers.
        bidirectional: run each layer in both directions.
        proj: if > 0, a linear projection to this width after every recurrent layer.
        layer_norm: LayerNorm after every recurrent layer (after the projection).
        dropout: dropout between layers and before the head.
        subsampling: "stack" (concatenate frames) or "conv" (strided 1-D convolution).
        subsample: time reduction factor, 1-4. conv_dim: conv front-end output width.
    """

    cell: str = "lstm"
    hidden: int = 256
    layers: int = 3
    bidirectional: bool = True
    proj: int = 0
    layer_norm: bool = False
    dropout: float = 0.1
    subsampling: str = "stack"
    subsample: int = 2
    conv_dim: int = 256

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"model.cell must be one of lstm, gru, rnn, got '{self.cell}'")
        if self.subsampling not in ("stack", "conv"):
            raise ValueError(f"model.subsampling must be stack or conv, got '{self.subsampling}'")
        if not 1 <= self.subsample <= 4:
            raise ValueError(f"model.subsample must be 1-4, got {self.subsample}")
        if self.hidden < 1 or self.layers < 1 or self.proj < 0:
            raise ValueError("model.hidden and model.layers must be >= 1, model.proj >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


def subsampled_lengths(lens: torch.Tensor, factor: int) -> torch.Tensor:
    """Frames after subsampling by ``factor``: ceil(T / factor), for both front-ends."""
    return torch.div(lens + factor - 1, factor, rounding_mode="floor")


def reverse_index(lens: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) gather index that reverses each row's first ``lens[b]`` frames and keeps the
    padding in place. Applying it twice is the identity."""
    t = torch.arange(T, device=lens.device).unsqueeze(0)  # (1, T)
    L = lens.unsqueeze(1)  # (B, 1)
    return torch.where(t < L, L - 1 - t, t)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper CPU mask than PyTorch's: CPU random numbers come one
    Mersenne-Twister draw at a time, so the mask takes 16 bits per element out of 48-bit draws
    (three elements a draw) instead of a draw per element. On the AN4 default shape
    (24 x 100 x 512) forward + backward went 16.0 -> 7.0 ms (a micro-benchmark, 2 threads), and
    PyTorch's dropout mask was 8% of a training step's op time (``aten::bernoulli_`` in a torch
    profile; docs/benchmarks.md, session 13). The drop probability is
    ``p`` rounded to 1/65536. On other devices (fused kernels there) it is ``nn.Dropout``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        k = round(self.p * 65536)  # elements dropped per 65536
        if k >= 65536:
            return x * 0.0
        n = x.numel()
        draws = torch.randint(0, 2**48, ((n + 2) // 3,), dtype=torch.int64)
        # each int64 holds four int16 fields; the most significant one is always 0
        low3 = slice(0, 3) if sys.byteorder == "little" else slice(1, 4)
        keep = draws.view(torch.int16).view(-1, 4)[:, low3] >= k - 32768
        return (x * keep.view(-1)[:n].view(x.shape)).mul_(65536.0 / (65536 - k))


class FrameStack(nn.Module):
    """Concatenate ``factor`` consecutive frames: (B, T, F) -> (B, ceil(T/factor), F*factor)."""

    def __init__(self, in_dim: int, factor: int):
        super().__init__()
        self.factor, self.out_dim = factor, in_dim * factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, F = x.shape
        pad = (-T) % self.factor
        if pad:
            x = nn.functional.pad(x, (0, 0, 0, pad))
        return x.reshape(B, (T + pad) // self.factor, F * self.factor)


class ConvSubsample(nn.Module):
    """Strided 1-D convolution over time (kernel 2s+1, padding s): T' = ceil(T / s)."""

    def __init__(self, in_dim: int, factor: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=2 * factor + 1, stride=factor,
                              padding=factor)
        self.act = nn.GELU()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (B, T', D)


class CTCModel(nn.Module):
    """Recurrent CTC acoustic model. ``forward(feats, lens) -> (log_probs, out_lens)``."""

    def __init__(self, cfg: ModelConfig, in_dim: int, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        if cfg.subsampling == "stack":
            self.frontend: nn.Module = FrameStack(in_dim, cfg.subsample)
        else:
            self.frontend = ConvSubsample(in_dim, cfg.subsample, cfg.conv_dim)
        dim = self.frontend.out_dim
        rnn_cls = CELLS[cfg.cell]
        extra = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
        dirs = 2 if cfg.bidirectional else 1
        self.rnns, self.projs, self.norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for _ in range(cfg.layers):
            # One unidirectional RNN per direction: the backward one reads each utterance
            # reversed within its own length, so padding never leaks in (see forward).
            self.rnns.append(nn.ModuleList(rnn_cls(dim, cfg.hidden, batch_first=True, **extra)
                                           for _ in range(dirs)))
            dim = cfg.hidden * dirs
            self.projs.append(nn.Linear(dim, cfg.proj) if cfg.proj else nn.Identity())
            dim = cfg.proj or dim
            self.norms.append(nn.LayerNorm(dim) if cfg.layer_norm else nn.Identity())
        self.dropout = Dropout(cfg.dropout)
        self.head = nn.Linear(dim, vocab_size)
        self.reset_recurrent_parameters()

    def reset_recurrent_parameters(self) -> None:
        """Orthogonal recurrent weights and, for LSTMs, forget-gate bias 1 (Jozefowicz et al.
        2015): both shorten the initial all-blank plateau of CTC training."""
        for rnns in self.rnns:
            for rnn in rnns:
                for name, p in rnn.named_parameters():
                    if name.startswith("weight_hh"):
                        gates = p.shape[0] // p.shape[1]
                        for g in range(gates):
                            nn.init.orthogonal_(p.data[g * p.shape[1]:(g + 1) * p.shape[1]])
                    elif name.startswith("bias_ih") and self.cfg.cell == "lstm":
                        h = p.shape[0] // 4
                        p.data[h:2 * h].fill_(1.0)  # gate order: input, forget, cell, output
                    elif name.startswith("bias_hh") and self.cfg.cell == "lstm":
                        h = p.shape[0] // 4
                        p.data[h:2 * h].fill_(0.0)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            feats: (B, T, F) padded features. lens: (B,) int64 valid frames.
        Returns:
            log_probs: (B, T', V) log-softmax over the vocabulary (float32).
            out_lens: (B,) valid frames after subsampling.
        """
        x, out_lens, _ = self.encode(feats, lens)
        return self.log_probs(x), out_lens

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """CTC head: (B, T', D) encoder output -> (B, T', V) float32 log-probs."""
        return self.head(x).float().log_softmax(dim=-1)

    def encode(self, feats: torch.Tensor, lens: torch.Tensor, keep: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Front-end and recurrent layers: ``(x, out_lens, kept)``, where ``kept`` is the output
        of layer ``keep`` (1-based; intermediate CTC feeds it to the same head) or None."""
        x = self.frontend(feats)  # (B, T', D)
        B, T, _ = x.shape
        out_lens = subsampled_lengths(lens, self.cfg.subsample).clamp(max=T)
        rev = reverse_index(out_lens, T)  # (B, T')
        kept = None
        for i, (rnns, proj, norm) in enumerate(zip(self.rnns, self.projs, self.norms), start=1):
            outs = [rnns[0](x)[0]]
            if len(rnns) == 2:
                xr = x.gather(1, rev.unsqueeze(-1).expand_as(x))
                hr = rnns[1](xr)[0]
                outs.append(hr.gather(1, rev.unsqueeze(-1).expand_as(hr)))
            x = self.dropout(norm(proj(torch.cat(outs, dim=-1))))  # (B, T', D)
            if i == keep:
                kept = x
        return x, out_lens, kept
