"""Benchmark: CPU inference of one model file under PyTorch fp32, PyTorch bf16 autocast (where the
CPU computes bf16 natively), ONNX Runtime fp32 and ONNX Runtime int8, on the same utterances.

The model is exported (``asr.onnx_export.export_onnx``, as ``asr export`` does) to fp32 and int8
ONNX files in a temporary folder. For each backend and thread count (1, and every core) it
measures the model load time and the real-time factor of decoding each utterance on its own
(batch of one): features (fbank/MFCC + CMVN) + the network + greedy decoding (no word timing);
reading and resampling the audio is done once beforehand and is not counted. The time is the
best of ``--repeats`` passes over all utterances, after one warm-up utterance. Also reported:
each backend's greedy WER, whether fp32 ONNX gives PyTorch's greedy text on every utterance and
the max |log-prob difference| on valid frames, a same-process 1-thread fp32 GEMM figure
(``torch.mm`` of two n x n matrices) to compare machines, and for PyTorch on one thread the
time inside the recurrent modules (one more pass, timed around each ``nn.LSTM``/``nn.GRU``
call): the floor of its real-time factor while those kernels stay as they are.

    python bench/inference.py MODEL.pt MANIFEST [--max-utts 200] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from gemm import gemm_flops  # bench/gemm.py (the script's folder is on sys.path)

from asr.decode.greedy import GreedyDecoder
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.onnx_export import export_onnx, float_ops
from asr.scoring import error_counts


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX); else bf16 is emulated."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def recurrent_seconds(rec, decode, waves: list[torch.Tensor]) -> tuple[float, float]:
    """One more pass over ``waves`` with a clock around every recurrent module's forward
    (``nn.LSTM``/``nn.GRU``/``nn.RNN``): (seconds inside them, the pass's wall seconds). That
    part of the real-time factor stays while PyTorch's recurrent kernels stay as they are."""
    inside, started = [0.0], [0.0]

    def pre(*_):
        started[0] = time.perf_counter()

    def post(*_):
        inside[0] += time.perf_counter() - started[0]

    mods = [m for m in rec.model.modules() if isinstance(m, torch.nn.RNNBase)]
    hooks = [h for m in mods for h in (m.register_forward_pre_hook(pre),
                                        m.register_forward_hook(post))]
    try:
        t = time.perf_counter()
        for w in waves:
            decode(w)
        return inside[0], time.perf_counter() - t
    finally:
        for h in hooks:
            h.remove()


def run(model: Path, waves: list[torch.Tensor], threads: int, bf16: bool, repeats: int) -> dict:
    """Load ``model`` with ``threads`` threads and decode every wave ``repeats`` times (and,
    for a PyTorch model on one thread, once more to time its recurrent layers alone)."""
    torch.set_num_threads(threads)  # ONNX Runtime sessions follow it at load time
    t = time.perf_counter()
    rec = load_model(model)
    load_s = time.perf_counter() - t
    decoder = GreedyDecoder(rec.tokenizer)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def decode(wave):
        log_probs, lens = rec.forward_waves([wave])  # features + network
        return log_probs[0, :int(lens[0])], decoder(log_probs, lens)[0][0].text

    with autocast:
        decode(waves[0])  # warm-up
        best, out = float("inf"), []
        for _ in range(repeats):
            t = time.perf_counter()
            out = [decode(w) for w in waves]
            best = min(best, time.perf_counter() - t)
        layers = recurrent_seconds(rec, decode, waves) \
            if threads == 1 and Path(model).suffix != ".onnx" else None
    return {"load_s": load_s, "seconds": best, "log_probs": [lp for lp, _ in out],
            "texts": [text for _, text in out], "recurrent": layers}


def features_seconds(model: Path, waves: list[torch.Tensor], threads: int) -> float:
    """Time of the front-end alone (features + CMVN) over every wave, for reference."""
    torch.set_num_threads(threads)
    rec = load_model(model)
    rec.source.of_wave(waves[0])
    t = time.perf_counter()
    for w in waves:
        rec.source.of_wave(w)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="model file (model.pt)")
    ap.add_argument("manifest", type=Path, help="manifest (JSONL) with reference texts")
    ap.add_argument("--max-utts", type=int, default=200, help="first N utterances (default 200)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts")
    ap.add_argument("--gemm-n", type=int, default=1024, help="GEMM size for the reference figure")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    rec = load_model(a.model)
    utts = read_manifest(a.manifest)[:a.max_utts]
    waves = [rec.source.wave(u) for u in utts]
    refs = [rec.norm(u.text) for u in utts]
    audio = sum(len(w) for w in waves) / rec.cfg.features.sample_rate
    results, info = [], {}
    with tempfile.TemporaryDirectory(prefix="asr-bench-") as tmp:
        files = {}
        for q in (None, "int8"):
            report = export_onnx(rec, Path(tmp) / f"model{'.' + q if q else ''}.onnx", q)
            files[q or "fp32"] = (Path(report.path), report)
        backends = [("PyTorch fp32", a.model, False)]
        if native_bf16():
            backends.append(("PyTorch bf16 autocast", a.model, True))
        backends += [("ONNX Runtime fp32", files["fp32"][0], False),
                     ("ONNX Runtime int8", files["int8"][0], False)]
        for threads in sorted({1, cores}):
            for name, path, bf16 in backends:
                r = run(path, waves, threads, bf16, a.repeats)
                words, _ = error_counts(refs, r["texts"])
                results.append({"backend": name, "threads": threads, "load_s": r["load_s"],
                                "seconds": r["seconds"], "rtf": r["seconds"] / audio,
                                "wer": words.rate, "_lp": r["log_probs"], "_texts": r["texts"]})
                if r["recurrent"]:
                    inside, wall = r["recurrent"]
                    info[f"recurrent_layers_{name}"] = {
                        "seconds": inside, "rtf": inside / audio, "share_of_pass": inside / wall}
            info[f"features_seconds_{threads}_threads"] = features_seconds(a.model, waves, threads)
        info["int8_float_ops"] = float_ops(files["int8"][1].ops)
        info["sizes_bytes"] = {"pt": a.model.stat().st_size,
                               **{k: v[1].size for k, v in files.items()}}

    def pick(name: str) -> dict:
        return next(r for r in results if r["backend"] == name and r["threads"] == 1)

    ref, onnx32, onnx8 = pick("PyTorch fp32"), pick("ONNX Runtime fp32"), pick("ONNX Runtime int8")

    def max_diff(other: dict) -> float:
        return max(float((x - y).abs().max()) for x, y in zip(other["_lp"], ref["_lp"]) if len(x))

    same = sum(x == y for x, y in zip(onnx32["_texts"], ref["_texts"]))
    info.update({
        "model": str(a.model), "manifest": str(a.manifest), "utterances": len(utts),
        "audio_seconds": audio, "repeats": a.repeats, "cores": cores,
        "cpu": platform.processor() or platform.machine(), "native_bf16": native_bf16(),
        "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
        "timed": "features + CMVN + network + greedy decoding, one utterance per call; audio "
                 "reading and resampling excluded",
        "gemm_gflops_1_thread": gemm_flops(a.gemm_n, threads=1) / 1e9, "gemm_n": a.gemm_n,
        "onnx_fp32_same_greedy_text": f"{same}/{len(utts)}",
        "onnx_fp32_max_abs_log_prob_diff": max_diff(onnx32),
        "onnx_int8_max_abs_log_prob_diff": max_diff(onnx8),
    })
    rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    print(f"{len(utts)} utterances, {audio:.1f} s of audio; timed: {info['timed']}; best of "
          f"{a.repeats}\n")
    print("| backend | threads | load (s) | RTF | x real time | greedy WER |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['threads']} | {r['load_s']:.3f} | {r['rtf']:.4f} | "
              f"{1 / r['rtf']:.0f} | {100 * r['wer']:.2f}% |")
    print(f"\nfp32 ONNX greedy text = PyTorch's on {same}/{len(utts)} utterances; max |log-prob "
          f"diff| fp32 {info['onnx_fp32_max_abs_log_prob_diff']:.2g}, int8 "
          f"{info['onnx_int8_max_abs_log_prob_diff']:.2g}")
    print(f"features alone (s): " + ", ".join(f"{k.split('_')[2]} thread(s) {v:.3f}"
                                              for k, v in info.items()
                                              if k.startswith("features_seconds")))
    for k, v in info.items():
        if k.startswith("recurrent_layers_"):
            print(f"{k[len('recurrent_layers_'):]}, 1 thread: the recurrent layers alone "
                  f"(PyTorch's nn.LSTM/GRU/RNN calls, one more pass) take RTF {v['rtf']:.4f}, "
                  f"{100 * v['share_of_pass']:.0f}% of that pass")
    print(f"file sizes (bytes): {info['sizes_bytes']}; int8 graph's float32 weight ops: "
          f"{info['int8_float_ops'] or 'none'}")
    print(f"1-thread fp32 GEMM ({a.gemm_n}^3): {info['gemm_gflops_1_thread']:.1f} GFLOP/s; "
          f"{cores} cores, native bf16: {info['native_bf16']}, torch {info['torch']}, "
          f"onnxruntime {info['onnxruntime']}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"results": rows, **info}, indent=2) + "\n")


if __name__ == "__main__":
    main()
