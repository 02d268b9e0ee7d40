"""Benchmark: training throughput of the acoustic model's padding-aware bidirectional layers
against the usual peer, PyTorch's bidirectional LSTM over a PackedSequence, in the same run;
then the same model under the mixed precision `asr train` picks for this CPU (bfloat16 where
the CPU computes it natively).

Both compute the same function (each direction sees only its utterance's real frames). The
batch has realistic length spread (uniform in [T/2, T]); the number reported is audio seconds
per second of wall time for forward + backward + optimiser step.

    python scripts/bench_rnn.py [--batch 32] [--frames 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.model import CTCModel, ModelConfig
from asr.train import autocast_dtype


class PackedPeer(nn.Module):
    """The common implementation: frame stacking, then nn.LSTM(bidirectional) on packed input."""

    def __init__(self, cfg: ModelConfig, in_dim: int, vocab: int):
        super().__init__()
        self.s = cfg.subsample
        self.rnn = nn.LSTM(in_dim * cfg.subsample, cfg.hidden, cfg.layers, batch_first=True,
                           bidirectional=True, dropout=cfg.dropout)
        self.head = nn.Linear(2 * cfg.hidden, vocab)

    def forward(self, x: torch.Tensor, lens: torch.Tensor):
        B, T, F = x.shape
        pad = (-T) % self.s
        x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(B, (T + pad) // self.s, F * self.s)
        out_lens = (lens + self.s - 1) // self.s
        packed = pack_padded_sequence(x, out_lens, batch_first=True, enforce_sorted=False)
        y, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(y).log_softmax(-1), out_lens


def audio_seconds_per_second(model: nn.Module, x, lens, repeats: int,
                             dtype: torch.dtype | None = None) -> float:
    """``dtype``: run the forward pass under CPU autocast to it (as training does), else fp32."""
    opt = torch.optim.AdamW(model.parameters())
    times = []
    for _ in range(repeats + 1):  # the first is warm-up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            lp, _ = model(x, lens)
        lp.sum().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return float(lens.sum()) / 100.0 / min(times[1:])  # 10 ms frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.batch, a.frames, 80)
    lens = torch.randint(a.frames // 2, a.frames + 1, (a.batch,))
    lens[0] = a.frames
    cfg = ModelConfig(cell="lstm", hidden=256, layers=4, subsample=3, dropout=0.0)
    ours = audio_seconds_per_second(CTCModel(cfg, 80, 28), x, lens, a.repeats)
    peer = audio_seconds_per_second(PackedPeer(cfg, 80, 28), x, lens, a.repeats)
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"batch {a.batch} x up to {a.frames} frames, 4x256 BiLSTM, 3x stacking")
    print(f"asr CTCModel (reverse-index bidirectional): {ours:8.1f} audio-s/s")
    print(f"nn.LSTM bidirectional on PackedSequence:    {peer:8.1f} audio-s/s")
    print(f"ratio: {ours / peer:.2f}x")
    dtype = autocast_dtype(torch.device("cpu"), amp=True)  # what `asr train` uses here
    if dtype is None:
        print("mixed precision: this CPU has no native bfloat16; training runs in float32")
        return
    torch.manual_seed(0)
    mixed = audio_seconds_per_second(CTCModel(cfg, 80, 28), x, lens, a.repeats, dtype)
    print(f"asr CTCModel under {dtype} autocast:      {mixed:8.1f} audio-s/s")
    print(f"ratio to float32: {mixed / ours:.2f}x")


if __name__ == "__main__":
    main()
