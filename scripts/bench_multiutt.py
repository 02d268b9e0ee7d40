"""Benchmark: files of several utterances but shorter than one segment. Concatenates a
manifest's utterances, in order, into recordings of about ``--seconds`` each, and transcribes
them (greedy) three ways in the same run:

- default: ``asr transcribe``'s rule (a file no longer than the model's longest training
  utterance is decoded whole, a longer one is cut at pauses);
- whole: every file decoded whole (``--whole-seconds`` = ``--chunk-seconds`` = 30 s);
- per utterance: each utterance file decoded alone (the reference point).

Reports the WER of each against the manifest's texts (one counter: asr.scoring).

    python scripts/bench_multiutt.py MODEL MANIFEST --seconds 20 --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.chunks import ChunkConfig
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.scoring import error_counts
from asr.transcribe import Transcriber


def build(utts, sr: int, seconds: float, out: Path) -> list[tuple[Path, str, float]]:
    """(path, reference text, duration) of each recording."""
    files, waves, texts = [], [], []

    def flush():
        path = out / f"rec{len(files):03d}.wav"
        wave = np.concatenate(waves)
        sf.write(path, wave, sr, subtype="PCM_16")
        files.append((path, " ".join(texts), len(wave) / sr))
        waves.clear()
        texts.clear()

    for u in utts:
        waves.append(load_audio(u.audio_path, sr).numpy())
        texts.append(u.text)
        if sum(len(w) for w in waves) >= seconds * sr:
            flush()
    if waves:
        flush()
    return files


def wer_of(rec, paths: list[str], refs: list[str], cfg: ChunkConfig) -> tuple[float, float]:
    t0 = time.time()
    hyps = [r.hypothesis.text for _, r in Transcriber(rec, None, cfg).transcribe(paths)]
    return error_counts(refs, hyps)[0].rate, time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("manifest")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each recording")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    torch.set_num_threads(2)
    rec = load_model(a.model)
    utts = read_manifest(a.manifest)
    for u in utts:
        u.text = rec.norm(u.text)
    a.out.mkdir(parents=True, exist_ok=True)
    files = build(utts, rec.cfg.features.sample_rate, a.seconds, a.out)
    paths, refs = [str(f) for f, _, _ in files], [t for _, t, _ in files]
    longest = max(d for _, _, d in files)
    span = max(30.0, longest)
    default, t_default = wer_of(rec, paths, refs, ChunkConfig(chunk_seconds=span))
    whole, t_whole = wer_of(rec, paths, refs, ChunkConfig(chunk_seconds=span, whole_seconds=span))
    per = rec.decode_utterances(utts, words=False)
    per_wer = error_counts([u.text for u in utts], [per[u.id].text for u in utts])[0].rate
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result = {"model": a.model, "manifest": a.manifest, "recordings": len(files),
              "seconds_each": [round(d, 1) for _, _, d in files],
              "model_longest_utterance": rec.longest_utterance, "wer_default": default,
              "wer_whole": whole, "wer_per_utterance": per_wer,
              "seconds_default": t_default, "seconds_whole": t_whole, "commit": commit,
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} threads"}
    (a.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
