"""Benchmark: full ``asr train`` steps of a config on real batches, held against the GEMM
throughput of the same machine measured in the same process.

A :class:`asr.train.Trainer` is built exactly as ``asr train`` builds it (manifests, tokenizer,
CMVN, bucketing sampler, speed perturbation, VTLP, SpecAugment, autocast dtype, AdamW, LR
schedule). One epoch of its batches is then run step by step with each part timed on its own
(by default epoch 2, after the batches of epoch 1 were prepared once without training: from
then on ``asr train`` holds each utterance's speed-perturbed audio and each VTLP warp's mel
matrix, so epoch 2 stands for the 119 epochs after the first; ``--epoch 1`` times the first):

- data: the training thread's wait for the next batch (audio read, speed perturbation,
  features, augmentation, padding; with ``data.prefetch`` > 0 prepared ahead in a background
  thread as ``asr train`` does, so only the wait counts); the seconds spent inside the feature
  source (read + features), on whichever thread, are reported beside it;
- forward (encoder, CTC head(s), CTC losses), backward, optimiser (unscale, clip, AdamW, LR);

Model FLOPs are counted from the shapes: every recurrent layer costs
``2 * gates * hidden * (input + hidden)`` per output frame and direction, plus projections and
the CTC head (twice with intermediate CTC); a training step counts 3x the forward FLOPs (the
usual forward + 2x backward rule). *Executed* FLOPs use the padded frames the kernels run on,
*useful* FLOPs the real ones; padding waste is the difference. The reference is ``torch.mm`` of
two n x n matrices in the step's dtype (the autocast dtype, or float32), best of 5, with the
same thread count, measured before and after the steps (the lower of the two is reported too:
a busy machine lowers both).

    python bench/train.py --train data/an4_train.jsonl --dev data/an4_dev.jsonl \\
        [--config recipes/an4/conf/train.yaml] [--epoch 2] [--warmup 3] [--max-steps 0] \\
        [--json out.json] \\
        [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from gemm import gemm_flops  # bench/gemm.py (the script's folder is on sys.path)

from asr.config import load_config
from asr.data import prefetch, train_batches
from asr.train import Trainer

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def forward_flops_per_frame(model) -> float:
    """Multiply-add FLOPs of one output frame of the encoder and one CTC head."""
    cfg, flops = model.cfg, 0.0
    dim = model.frontend.out_dim
    if cfg.subsampling != "stack":  # the convolution's cost per output frame
        conv = model.frontend.conv
        flops += 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0]
    dirs = 2 if cfg.bidirectional else 1
    for _ in range(cfg.layers):
        flops += 2 * GATES[cfg.cell] * cfg.hidden * (dim + cfg.hidden) * dirs
        dim = cfg.hidden * dirs
        if cfg.proj:
            flops += 2 * dim * cfg.proj
            dim = cfg.proj
    return flops, 2 * dim * model.head.out_features


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class Timed:
    """Wraps the feature source: counts the seconds spent in its calls."""

    def __init__(self, source):
        self.source, self.seconds = source, 0.0

    def __getattr__(self, name):
        return getattr(self.source, name)

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.source(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t


def run_steps(tr: Trainer, warmup: int, max_steps: int, epoch: int = 1) -> dict:
    cfg, model = tr.cfg, tr.model
    prepared = 0
    for e in range(1, epoch):  # the earlier epochs' data, as asr train would have read it
        for _ in train_batches(tr.examples, tr.source, cfg.data, cfg.specaug, cfg.train.seed, e):
            prepared += 1
    source = Timed(tr.source)
    model.train()
    enc_pf, head_pf = forward_flops_per_frame(model)
    heads = 2 if cfg.train.inter_ctc_layer else 1
    layer, w = cfg.train.inter_ctc_layer, cfg.train.inter_ctc_weight
    dtype = tr.amp_dtype or torch.float32
    tot = dict(data=0.0, features=0.0, forward=0.0, backward=0.0, optimiser=0.0, steps=0,
               audio_s=0.0, padded_frames=0, real_frames=0, batches=0, prepared=prepared)
    it = prefetch(train_batches(tr.examples, source, cfg.data, cfg.specaug, cfg.train.seed, epoch),
                  cfg.data.prefetch)
    while True:
        feat0 = source.seconds
        t0 = time.perf_counter()
        item = next(it, None)
        t1 = time.perf_counter()
        if item is None:
            break
        bi, batch = item
        if batch is None:
            continue
        tr.opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=tr.amp_dtype is not None):
            x, out_lens, inter = model.encode(batch.feats, batch.lens, keep=layer)
            outputs = [model.log_probs(h) for h in (x, inter) if h is not None]
        losses = [tr.ctc(lp.transpose(0, 1), batch.targets, out_lens, batch.target_lens)
                  for lp in outputs]
        loss = losses[0] if len(losses) == 1 else (1 - w) * losses[0] + w * losses[1]
        loss = loss / len(batch.ids)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(tr.params, cfg.train.grad_clip)
        tr.opt.step()
        tr.sched.step()
        t4 = time.perf_counter()
        if bi < warmup:
            continue
        if max_steps and tot["steps"] >= max_steps:
            break
        tot["data"] += t1 - t0
        tot["features"] += source.seconds - feat0
        tot["forward"] += t2 - t1
        tot["backward"] += t3 - t2
        tot["optimiser"] += t4 - t3
        tot["steps"] += 1
        tot["audio_s"] += batch.seconds
        tot["padded_frames"] += int(x.shape[0] * x.shape[1])
        tot["real_frames"] += int(out_lens.sum())
    per_frame = enc_pf + heads * head_pf
    tot["train_flops_executed"] = 3 * per_frame * tot["padded_frames"]
    tot["train_flops_useful"] = 3 * per_frame * tot["real_frames"]
    tot["dtype"] = str(dtype).replace("torch.", "")
    return tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--config", default=str(Path(__file__).parents[1] / "recipes/an4/conf/train.yaml"))
    ap.add_argument("--warmup", type=int, default=3, help="first batches run but not counted")
    ap.add_argument("--max-steps", type=int, default=0, help="0: the whole epoch")
    ap.add_argument("--epoch", type=int, default=2,
                    help="the epoch whose batches are timed (earlier ones: data only)")
    ap.add_argument("--gemm-n", type=int, default=2048)
    ap.add_argument("--json", default=None)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    cfg = load_config(a.config or None, a.overrides)
    threads = cfg.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        tr = Trainer(cfg, a.train, a.dev, Path(tmp) / "exp", device="cpu")
        dtype = tr.amp_dtype or torch.float32
        g_before = gemm_flops(a.gemm_n, dtype)
        g32 = gemm_flops(a.gemm_n) if dtype != torch.float32 else g_before
        r = run_steps(tr, a.warmup, a.max_steps, a.epoch)
        g_after = gemm_flops(a.gemm_n, dtype)
    step_s = r["data"] + r["forward"] + r["backward"] + r["optimiser"]
    compute_s = r["forward"] + r["backward"]
    gemm = max(g_before, g_after)
    res = {
        "machine": f"{platform.processor() or platform.machine()}, nproc {os.cpu_count()}",
        "commit": commit(), "torch": torch.__version__, "threads": threads,
        "config": a.config, "overrides": a.overrides, "dtype": r["dtype"],
        "epoch": a.epoch, "batches_prepared_before": r["prepared"],
        "steps": r["steps"], "audio_s": r["audio_s"], "seconds": step_s,
        "audio_s_per_s": r["audio_s"] / step_s,
        "gemm_flops": gemm, "gemm_flops_before": g_before, "gemm_flops_after": g_after,
        "gemm_fp32_flops": g32,
        "step_flops_executed": r["train_flops_executed"] / step_s,
        "step_flops_useful": r["train_flops_useful"] / step_s,
        "padding_waste": 1 - r["real_frames"] / max(1, r["padded_frames"]),
        "shares": {k: r[k] / step_s for k in ("data", "forward", "backward", "optimiser")},
        "features_share": r["features"] / step_s,
    }
    res["ratio_executed"] = res["step_flops_executed"] / gemm
    res["ratio_useful"] = res["step_flops_useful"] / gemm
    res["ratio_compute_only"] = r["train_flops_executed"] / compute_s / gemm
    print(f"# training step benchmark: {res['machine']}, commit {res['commit']}, torch "
          f"{res['torch']}, {threads} threads, {res['dtype']}")
    print(f"{r['steps']} steps of epoch {a.epoch} ({r['audio_s']:.0f} s of audio) in "
          f"{step_s:.1f} s: "
          f"{res['audio_s_per_s']:.0f} audio-s/s")
    print("| quantity | value |\n|---|---|")
    print(f"| GEMM {res['dtype']} {a.gemm_n}^3 (before / after) | {g_before / 1e9:.0f} / "
          f"{g_after / 1e9:.0f} GFLOP/s |")
    if dtype != torch.float32:
        print(f"| GEMM float32 | {g32 / 1e9:.0f} GFLOP/s |")
    print(f"| step, executed FLOPs (padded frames) | {res['step_flops_executed'] / 1e9:.1f} "
          f"GFLOP/s = {res['ratio_executed']:.2f} of GEMM |")
    print(f"| step, useful FLOPs (real frames) | {res['step_flops_useful'] / 1e9:.1f} GFLOP/s = "
          f"{res['ratio_useful']:.2f} of GEMM |")
    print(f"| forward + backward only, executed | {res['ratio_compute_only']:.2f} of GEMM |")
    print(f"| padding waste | {100 * res['padding_waste']:.1f}% of frames |")
    for k, v in res["shares"].items():
        print(f"| time share: {k} | {100 * v:.1f}% |")
    print(f"| feature source (read + features), any thread | "
          f"{100 * res['features_share']:.1f}% |")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
