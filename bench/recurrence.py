"""Benchmark: the ceiling the recurrence puts on a recurrent layer's training FLOP/s on this CPU,
measured in one process against the big-GEMM reference of ``bench/train.py``.

An LSTM/GRU/RNN layer's FLOPs are of two kinds. The input projection of every frame (and in the
backward pass the input gradient and both weight gradients) are large GEMMs over all B x T
frames at once. The recurrent product h W_hh^T (and in the backward pass the gradient through it)
must run one time step after another: T small GEMMs of (B, H) x (H, gates*H), whose FLOP/s on a
CPU is far below a large GEMM's. With F_in and F_rec the forward FLOPs of the two parts, a
training step does 3 F_in + F_rec FLOPs in large GEMMs and 2 F_rec in per-step ones, so even
with free gate arithmetic and no framework overhead a layer cannot exceed

    ceiling = 3 (F_in + F_rec) / ((3 F_in + F_rec) / R_big + 2 F_rec / R_step)

where R_big is the measured FLOP/s of the layer's own input-projection GEMM shape and R_step that
of its per-step GEMM shape, each timed as ``torch.mm`` calls (a fused kernel that keeps its
weights packed may do better, so this is the ceiling of a layer built from such calls). The
script measures R_big, R_step, the n x n GEMM reference (the denominator of
``bench/train.py``'s ratio), and PyTorch's ``nn.LSTM``/``nn.GRU`` forward +
backward on the same shape, in the dtype ``asr train`` uses (bf16 where native) and in fp32.
The shape (hidden, layers, direction, input width after frame stacking, batch) comes from the
config; T is ``--frames`` output frames (AN4 averages about 70 after 4x stacking).

    python bench/recurrence.py [--config recipes/an4/conf/train.yaml] [--frames 70]
        [--batch 0 (data.max_batch)] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from gemm import gemm_flops  # bench/gemm.py (the script's folder is on sys.path)
from train import GATES  # bench/train.py's count of matrix products per cell

from asr.config import load_config
from asr.model import CELLS
from asr.train_parts import autocast_dtype


def ceiling_flops(f_in: float, f_rec: float, r_big: float, r_step: float) -> float:
    """The most FLOP/s a training step of a layer can reach (the module docstring's formula):
    3 F_in + F_rec FLOPs at the large-GEMM rate, 2 F_rec at the per-step rate."""
    return 3 * (f_in + f_rec) / ((3 * f_in + f_rec) / r_big + 2 * f_rec / r_step)


def best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def mm_flops(m: int, k: int, n: int, dtype: torch.dtype, repeats: int, calls: int = 1) -> float:
    """FLOP/s of ``calls`` products (m, k) x (k, n) in a row (the per-step shape: one after another)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)

    def run():
        for _ in range(calls):
            torch.mm(a, b)
    return 2 * m * k * n * calls / best_seconds(run, repeats)


def layer_flops(cell: str, inp: int, hidden: int, batch: int, frames: int, dtype: torch.dtype,
                repeats: int) -> float:
    """Model FLOP/s (3x forward GEMM FLOPs) of PyTorch's one-direction layer, forward + backward."""
    rnn = CELLS[cell](inp, hidden, batch_first=True)
    x = torch.randn(batch, frames, inp, requires_grad=True)
    amp = dtype != torch.float32

    def run():
        with torch.autocast("cpu", dtype=dtype, enabled=amp):
            y = rnn(x)[0]
        y.float().sum().backward()
    flops = 3 * 2 * GATES[cell] * hidden * (inp + hidden) * batch * frames
    return flops / best_seconds(run, repeats)


def measure(cfg, frames: int, batch: int, dtype: torch.dtype, repeats: int, gemm_n: int) -> dict:
    m = cfg.model
    g, H = GATES[m.cell], m.hidden
    dirs = 2 if m.bidirectional else 1
    first = cfg.features.dim * m.subsample if m.subsampling == "stack" else m.conv_dim
    inputs = [first] + [m.proj or H * dirs] * (m.layers - 1)
    ref = gemm_flops(gemm_n, dtype, repeats=repeats)
    r_step = mm_flops(batch, H, g * H, dtype, repeats, calls=frames)
    layers, f_in_all, f_rec_all, t_ceiling, t_torch = [], 0.0, 0.0, 0.0, 0.0
    for inp in sorted(set(inputs)):
        n = inputs.count(inp) * dirs
        f_in = 2 * g * H * inp * batch * frames
        f_rec = 2 * g * H * H * batch * frames
        r_big = mm_flops(batch * frames, inp, g * H, dtype, repeats)
        r_layer = layer_flops(m.cell, inp, H, batch, frames, dtype, repeats)
        ceiling = ceiling_flops(f_in, f_rec, r_big, r_step)
        layers.append({"input": inp, "count": n, "r_big": r_big, "ceiling_flops": ceiling,
                       "torch_flops": r_layer})
        f_in_all, f_rec_all = f_in_all + n * f_in, f_rec_all + n * f_rec
        t_ceiling += n * 3 * (f_in + f_rec) / ceiling
        t_torch += n * 3 * (f_in + f_rec) / r_layer
    total = 3 * (f_in_all + f_rec_all)
    return {"dtype": str(dtype).replace("torch.", ""), "gemm_ref": ref, "r_step": r_step,
            "layers": layers, "ceiling": total / t_ceiling / ref, "torch": total / t_torch / ref,
            "rec_share": f_rec_all / (f_in_all + f_rec_all)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).parents[1] / "recipes/an4/conf/train.yaml"))
    ap.add_argument("--frames", type=int, default=70, help="output frames per utterance (T')")
    ap.add_argument("--batch", type=int, default=0, help="0: the config's data.max_batch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gemm-n", type=int, default=2048)
    ap.add_argument("--json", default=None)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    cfg = load_config(a.config, a.overrides)
    batch = a.batch or cfg.data.max_batch
    dtypes = [torch.float32]
    amp = autocast_dtype(torch.device("cpu"), cfg.train.amp)
    if amp is not None and amp != torch.float32:
        dtypes.insert(0, amp)
    m = cfg.model
    print(f"# recurrence ceiling: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; {m.layers}x{m.hidden} "
          f"{m.cell}{' bidirectional' if m.bidirectional else ''}, batch {batch}, {a.frames} frames")
    print("| dtype | n x n GEMM GFLOP/s | input-projection GEMM GFLOP/s | per-step GEMM "
          "GFLOP/s | recurrent share of FLOPs | ceiling, of n x n GEMM | torch layer fwd+bwd, "
          "of n x n GEMM |")
    print("|---|---|---|---|---|---|---|")
    out = []
    for dt in dtypes:
        r = measure(cfg, a.frames, batch, dt, a.repeats, a.gemm_n)
        out.append(r)
        big = " / ".join(f"{x['r_big'] / 1e9:.0f}" for x in r["layers"])
        print(f"| {r['dtype']} | {r['gemm_ref'] / 1e9:.0f} | {big} | {r['r_step'] / 1e9:.0f} | "
              f"{100 * r['rec_share']:.0f}% | {r['ceiling']:.2f} | {r['torch']:.2f} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"config": a.config, "overrides": a.overrides,
                                            "frames": a.frames, "batch": batch,
                                            "results": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
