"""Benchmark: streaming recognition (asr.stream) of a unidirectional model, per chunk size.

For each chunk size (``--chunks-ms``, default 40,100,200,400) every utterance of the manifest is
streamed chunk by chunk on ``--threads`` threads (default 1), and it measures:

- compute per chunk (mean and 95th percentile, ms): ``Stream.accept`` on one chunk, i.e.
  incremental features, the network and the decoder's partial result;
- real-time factor: the compute of all chunks plus ``finish`` over the audio's duration;
- word delay: for each word of the final result, the time at which a partial result first
  held it whole at its place (the audio fed so far, plus that chunk's compute) minus the word's
  end in the audio (its forced-alignment end, the definition the final result gives; negative
  when the model emits a word before the frames aligned to it end); mean and 90th percentile;
- WER of the streamed final results against the manifest's texts, and whether they equal the
  offline decoding of the same files (they must, up to float rounding).

With ``--memory-minutes M`` it then streams M minutes (the manifest's audio, looped, with 0.8 s
pauses between utterances, endpointing at ``--endpoint-ms``) through ``stream_events`` and
reads the process's resident memory every 10 minutes of audio. Prints markdown tables and writes
JSON (``--json``).

    python bench/stream.py MODEL.pt MANIFEST.jsonl [--chunks-ms 40,100,200,400] [--threads 1]
        [--decoder greedy] [--memory-minutes 120] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from asr.audio import load_audio
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.scoring import error_counts
from asr.stream import Stream, stream_events


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stream_one(rec, decoder, wave: torch.Tensor, chunk: int) -> dict:
    rate = rec.cfg.features.sample_rate
    stream, times, partials, fed = Stream(rec, decoder), [], [], 0
    for i in range(0, wave.numel(), chunk):
        piece = wave[i:i + chunk]
        t0 = time.perf_counter()
        text = stream.accept(piece)
        dt = time.perf_counter() - t0
        times.append(dt)
        fed += piece.numel()
        partials.append((fed / rate + dt, text.split()))
    t0 = time.perf_counter()
    hyp = stream.finish()
    fin = time.perf_counter() - t0
    final = hyp.text.split()
    delays = []
    for k, w in enumerate(hyp.words):  # when a partial first held the final's word k, spelled out
        shown = next((t for t, words in partials if len(words) > k and words[k] == final[k]),
                     wave.numel() / rate + fin)
        delays.append(shown - w.end)
    return {"hyp": hyp, "chunk_s": times, "finish_s": fin, "delays": delays}


def run_chunks(rec, decoder, utts, waves, chunk_ms: float, offline: dict) -> dict:
    rate = rec.cfg.features.sample_rate
    chunk = max(1, int(round(chunk_ms * rate / 1000)))
    per_chunk, delays, compute, audio, hyps, same = [], [], 0.0, 0.0, {}, 0
    for u, w in zip(utts, waves):
        r = stream_one(rec, decoder, w, chunk)
        per_chunk += r["chunk_s"]
        delays += r["delays"]
        compute += sum(r["chunk_s"]) + r["finish_s"]
        audio += w.numel() / rate
        hyps[u.id] = r["hyp"].text
        same += r["hyp"].text == offline[u.id]
    words, _ = error_counts([u.text for u in utts], [hyps[u.id] for u in utts])
    pc = np.asarray(per_chunk) * 1000
    d = np.asarray(delays) * 1000 if delays else np.zeros(1)
    return {"chunk_ms": chunk_ms, "chunks": len(per_chunk), "compute_ms_mean": float(pc.mean()),
            "compute_ms_p95": float(np.percentile(pc, 95)), "rtf": compute / audio,
            "word_delay_ms_mean": float(d.mean()), "word_delay_ms_p90": float(np.percentile(d, 90)),
            "words": len(delays), "wer": words.rate,
            "same_as_offline": f"{same}/{len(utts)}"}


def run_memory(rec, decoder, waves, minutes: float, endpoint_ms: float, chunk_ms: float,
               endpoint: str | None = None) -> list:
    rate = rec.cfg.features.sample_rate
    chunk = int(round(chunk_ms * rate / 1000))
    pause = torch.zeros(int(0.8 * rate))
    total, marks, out = int(minutes * 60 * rate), [], []

    def chunks():
        fed, k = 0, 0
        while fed < total:
            w = torch.cat([waves[k % len(waves)], pause])
            k += 1
            for i in range(0, w.numel(), chunk):
                piece = w[i:i + chunk]
                fed += piece.numel()
                if fed // (600 * rate) > len(marks):  # every 10 minutes of audio
                    marks.append(fed)
                    out.append({"minutes": round(fed / rate / 60, 1), "rss_mb": round(rss_mb(), 1)})
                yield piece
                if fed >= total:
                    return

    t0, finals = time.perf_counter(), 0
    for e in stream_events(rec, chunks(), decoder, endpoint_ms / 1000, endpoint):
        finals += e.final
    return out, finals, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("manifest")
    ap.add_argument("--chunks-ms", default="40,100,200,400")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decoder", default="greedy", choices=["auto", "greedy", "beam"])
    ap.add_argument("--memory-minutes", type=float, default=0.0)
    ap.add_argument("--endpoint-ms", type=float, default=800.0)
    ap.add_argument("--endpoint", default=None, choices=["blank", "vad", "energy"],
                    help="endpoint detector of the memory run (default: asr stream's)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rec = load_model(a.model)
    decoder = rec.decoder(a.decoder)
    utts = [u for u in read_manifest(a.manifest)]
    norm = rec.cfg.text
    for u in utts:
        u.text = norm(u.text)
    waves = [load_audio(u.audio_path, rec.cfg.features.sample_rate) for u in utts]
    offline = {u.id: h.text for u, h in zip(utts, (decoder(*rec.forward_waves([w]))[0][0] for w in waves))}
    rows = [run_chunks(rec, decoder, utts, waves, float(ms), offline) for ms in a.chunks_ms.split(",")]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"model {a.model}, {len(utts)} utterances, {sum(w.numel() for w in waves) / rec.cfg.features.sample_rate:.0f} s, "
          f"decoder {a.decoder}, {a.threads} thread(s), commit {commit}, {platform.processor() or platform.machine()}")
    print("| chunk ms | compute per chunk ms (mean / p95) | real-time factor | word delay ms (mean / p90) | WER % | same as offline |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['chunk_ms']:.0f} | {r['compute_ms_mean']:.2f} / {r['compute_ms_p95']:.2f} | {r['rtf']:.4f} | "
              f"{r['word_delay_ms_mean']:.0f} / {r['word_delay_ms_p90']:.0f} | {100 * r['wer']:.2f} | {r['same_as_offline']} |")
    result = {"model": a.model, "manifest": a.manifest, "threads": a.threads, "commit": commit,
              "decoder": a.decoder, "chunks": rows}
    if a.memory_minutes:
        mem, finals, secs = run_memory(rec, decoder, waves, a.memory_minutes, a.endpoint_ms, 100.0,
                                       a.endpoint)
        print(f"\n{a.memory_minutes:.0f} min streamed in {secs:.0f} s ({finals} utterances endpointed)")
        print("| minutes of audio | resident memory MB |\n|---|---|")
        for m in mem:
            print(f"| {m['minutes']} | {m['rss_mb']} |")
        result["memory"] = {"points": mem, "finals": finals, "seconds": secs}
    if a.json:
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
