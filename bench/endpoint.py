"""Benchmark: pause detectors for endpointing and long-audio segmentation (energy, the model's
blank run, silero-vad) on concatenated real utterances with real gaps, clean and noisy.

The manifest's utterances (cycled) are written back to back into ``--minutes`` of audio with a
random gap (``--gap`` MIN,MAX seconds) between them, filled with noise at the level of the
utterances' own background. Each utterance is decoded alone first (greedy); its aligned words
give where speech lies, and the true gaps are the stretches from one utterance's last word to
the next one's first. Then, for each condition (clean; white and babble noise at ``--snr`` dB,
babble = the sum of ``--babble`` other utterances), each detector decides speech per 10 ms frame:

- ``energy``: :mod:`asr.segment`'s rule, as ``asr transcribe`` cuts (its chunker, unchanged);
- ``vad``: silero-vad (:mod:`asr.vad`), as ``asr transcribe --endpoint vad`` cuts;
- ``blank``: the model's best path is blank (its log-probs over 30 s windows, offline: the
  bidirectional model stands in for a streaming one).

Two uses are scored against the true gaps (a cut is a hit within ``--tol`` s of one):

- segmentation (``asr transcribe``): a cut at the middle of each pause of ``--pause`` s;
  precision, recall, cuts inside a word (aligned words), and the WER of decoding the segments;
- endpointing (``asr stream``): an endpoint fires once ``--endpoint`` s of non-speech follow
  speech; precision, recall, and the delay from the last word's end to the endpoint.

    python bench/endpoint.py MODEL.pt DEV.jsonl --babble-manifest TRAIN.jsonl --minutes 5 \
        --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.chunks import ChunkConfig, iter_chunks
from asr.decode.greedy import GreedyDecoder
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.scoring import error_counts
from asr.segment import FRAME_SECONDS, frame_energies_db
from asr.vad import PauseClock

HOP = 0.01


def decode(rec, waves: list[np.ndarray], batch: int = 8):
    """Greedy hypotheses (with word times) of each wave."""
    dec, out = GreedyDecoder(rec.tokenizer), []
    for i in range(0, len(waves), batch):
        lp, lens = rec.forward_waves([torch.from_numpy(w) for w in waves[i:i + batch]])
        out += [nb[0] for nb in dec(lp, lens, rec.frame_seconds)]
    return out


def build(rec, utts, seconds: float, gap: tuple[float, float], rng) -> dict:
    """The clean recording, its pieces (words in absolute seconds) and its speech power."""
    sr = rec.cfg.features.sample_rate
    waves = [load_audio(u.audio_path, sr).numpy() for u in utts]
    hyps = decode(rec, waves)
    parts, pieces, t = [], [], 0
    i = 0
    while t < seconds * sr:
        w, h, u = waves[i % len(waves)], hyps[i % len(waves)], utts[i % len(waves)]
        e = frame_energies_db(w, sr // 100)
        bg = 10 ** (np.percentile(e, 10) / 20)  # the utterance's own background RMS
        g = rng.normal(0, bg, round(rng.uniform(*gap) * sr)).astype(np.float32) if i else \
            np.zeros(0, np.float32)
        parts += [g, w]
        t += len(g)
        words = [(t / sr + x.start, t / sr + x.end) for x in h.words]
        pieces.append({"text": rec.norm(u.text), "start": t / sr, "end": (t + len(w)) / sr,
                       "words": words, "hyp": h.text})
        t += len(w)
        i += 1
    x = np.concatenate(parts)
    speech = np.zeros(len(x), bool)
    for p in pieces:
        if p["words"]:
            speech[round(p["words"][0][0] * sr):round(p["words"][-1][1] * sr)] = True
    return {"x": x, "pieces": pieces, "power": float(np.mean(x[speech] ** 2)), "sr": sr}


def babble(rec, utts, n: int, length: int, rng) -> np.ndarray:
    """``n`` utterances, each looped to ``length`` samples from a random offset, summed."""
    sr = rec.cfg.features.sample_rate
    out = np.zeros(length)
    for u in rng.choice(utts, n, replace=False):
        w = load_audio(u.audio_path, sr).numpy()
        w = w / (np.sqrt(np.mean(w ** 2)) + 1e-9)
        out += np.roll(np.resize(w, length), rng.integers(length))
    return out


def add_noise(x, power, noise, snr):
    noise = noise * np.sqrt(power / 10 ** (snr / 10) / np.mean(noise ** 2))
    y = x + noise
    return (y / max(1.0, np.abs(y).max())).astype(np.float32)


def true_gaps(pieces) -> list[tuple[float, float]]:
    """From each utterance's last word to the next one's first (utterance bounds without words)."""
    spans = [(p["words"][0][0], p["words"][-1][1]) if p["words"] else (p["start"], p["end"])
             for p in pieces]
    return [(a[1], b[0]) for a, b in zip(spans, spans[1:])]


def score_cuts(cuts, gaps, words, tol) -> dict:
    g = np.array(gaps)
    hit = [bool(np.any((g[:, 0] - tol <= c) & (c <= g[:, 1] + tol))) for c in cuts]
    found = sum(any(a - tol <= c <= b + tol for c in cuts) for a, b in gaps)
    in_word = sum(any(s < c < e for s, e in words) for c in cuts)
    return {"cuts": len(cuts), "precision": sum(hit) / max(1, len(cuts)),
            "recall": found / len(gaps), "cuts_in_words": in_word}


def blank_speech(rec, x: np.ndarray, window: float = 30.0) -> np.ndarray:
    """Per 10 ms frame: the model's best path is not blank (windows of ``window`` s)."""
    sr, n = rec.cfg.features.sample_rate, round(window * rec.cfg.features.sample_rate)
    rep = round(rec.frame_seconds / HOP)
    out = []
    for i in range(0, len(x), n):
        lp, lens = rec.forward_waves([torch.from_numpy(x[i:i + n])])
        best = lp[0, :int(lens[0])].argmax(-1).numpy()
        frames = len(x[i:i + n]) // (sr // 100)
        m = np.repeat(best != 0, rep)[:frames]
        out.append(np.concatenate([m, np.zeros(frames - len(m), bool)]))
    return np.concatenate(out)


def frame_speech(name: str, x: np.ndarray, sr: int) -> np.ndarray:
    """Per-frame decisions of the online detectors, fed 100 ms at a time (as asr stream)."""
    from asr.vad import frame_detector

    det, step = frame_detector(name, sr), sr // 10
    out = [det.accept(x[i:i + step], final=i + step >= len(x)) for i in range(0, len(x), step)]
    return np.concatenate(out)


def pause_cuts(speech: np.ndarray, min_pause: int) -> list[float]:
    """The middle of every run of >= ``min_pause`` non-speech frames between speech frames."""
    idx = np.flatnonzero(speech)
    d = np.diff(idx)
    return [(idx[k] + 1 + idx[k + 1]) / 2 * HOP for k in np.flatnonzero(d > min_pause)]


def endpoints(speech: np.ndarray, seconds: float, chunk: int = 10) -> list[float]:
    """Where an endpointer fed ``chunk`` frames at a time fires, resetting after each."""
    clock, out = PauseClock(), []
    for i in range(0, len(speech), chunk):
        clock.add(speech[i:i + chunk])
        if clock.pause_seconds() >= seconds:
            out.append((i + chunk) * HOP)
            clock.reset()
    return out


def segment_wer(rec, x, cuts, refs) -> float:
    sr = rec.cfg.features.sample_rate
    bounds = [0] + [round(c * sr) for c in cuts] + [len(x)]
    segs = [x[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    text = " ".join(h.text for h in decode(rec, segs) if h.text)
    return error_counts([refs], [text])[0].rate * 100


def chunker_cuts(x, sr, endpoint, pause) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.wav"
        sf.write(path, x, sr, subtype="FLOAT")
        cfg = ChunkConfig(segment="pause", pause_seconds=pause, endpoint=endpoint,
                          whole_seconds=1.0)
        return [c.start for c in iter_chunks(str(path), sr, cfg)][1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("manifest")
    p.add_argument("--babble-manifest", help="utterances summed into babble (default: manifest)")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--gap", default="0.2,1.2", help="MIN,MAX seconds between utterances")
    p.add_argument("--snr", default="20,10")
    p.add_argument("--babble", type=int, default=6)
    p.add_argument("--pause", type=float, default=0.25, help="segmentation pause, s")
    p.add_argument("--endpoint", type=float, default=0.8, help="streaming endpoint, s")
    p.add_argument("--tol", type=float, default=0.3)
    p.add_argument("--detectors", default="energy,blank,vad")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    rec = load_model(a.model)
    utts = read_manifest(a.manifest)
    clean = build(rec, utts, a.minutes * 60, tuple(map(float, a.gap.split(","))), rng)
    x, sr, pieces = clean["x"], clean["sr"], clean["pieces"]
    gaps, words = true_gaps(pieces), [w for pc in pieces for w in pc["words"]]
    refs = " ".join(pc["text"] for pc in pieces)
    alone = error_counts([refs], [" ".join(pc["hyp"] for pc in pieces if pc["hyp"])])[0].rate * 100
    conds = {"clean": x}
    bab = babble(rec, read_manifest(a.babble_manifest or a.manifest), a.babble, len(x), rng)
    for snr in map(float, a.snr.split(",")):
        conds[f"white {snr:g} dB"] = add_noise(x, clean["power"], rng.standard_normal(len(x)), snr)
        conds[f"babble {snr:g} dB"] = add_noise(x, clean["power"], bab, snr)
    min_pause = round(a.pause / FRAME_SECONDS)
    rows = []
    for cond, y in conds.items():
        for det in a.detectors.split(","):
            t0 = time.perf_counter()
            speech = blank_speech(rec, y) if det == "blank" else frame_speech(det, y, sr)
            t_det = time.perf_counter() - t0
            cuts = pause_cuts(speech, min_pause) if det == "blank" else \
                chunker_cuts(y, sr, det, a.pause)
            seg = score_cuts(cuts, gaps, words, a.tol)
            seg["wer"] = segment_wer(rec, y, cuts, refs)
            ends = endpoints(speech, a.endpoint)
            ep = score_cuts(ends, gaps, words, a.tol)
            last_word_end = np.array([g[0] for g in gaps])
            delays = [e - last_word_end[last_word_end <= e].max() for e in ends
                      if np.any(last_word_end <= e)]
            ep["median_delay_s"] = float(np.median(delays)) if delays else None
            rows.append({"condition": cond, "detector": det, "segmentation": seg,
                         "endpointing": ep, "detector_rtf": t_det / (len(y) / sr)})
            print(f"{cond:14s} {det:7s} seg P {seg['precision']:.3f} R {seg['recall']:.3f} "
                  f"inword {seg['cuts_in_words']:3d} WER {seg['wer']:.2f} | ep P "
                  f"{ep['precision']:.3f} R {ep['recall']:.3f}", file=sys.stderr, flush=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    info = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()}"
                       f" CPUs, torch {torch.__version__}", "commit": commit,
            "command": " ".join(sys.argv), "audio_minutes": round(len(x) / sr / 60, 2),
            "utterances": len(pieces), "gaps": len(gaps), "wer_each_utterance_alone": alone}
    print(f"{info['audio_minutes']} min, {len(pieces)} utterances, {len(gaps)} gaps; WER of "
          f"each utterance decoded alone {alone:.2f}%; machine {info['machine']}; commit "
          f"{commit}; `{info['command']}`\n")
    print(f"| condition | detector | segmentation ({a.pause:g} s) P / R | cuts in a word | WER % "
          f"| endpoint ({a.endpoint:g} s) P / R | endpoint delay s (median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s, e = r["segmentation"], r["endpointing"]
        d = "-" if e["median_delay_s"] is None else f"{e['median_delay_s']:.2f}"
        print(f"| {r['condition']} | {r['detector']} | {s['precision']:.3f} / {s['recall']:.3f} "
              f"| {s['cuts_in_words']} of {s['cuts']} | {s['wer']:.2f} | {e['precision']:.3f} / "
              f"{e['recall']:.3f} | {d} |")
    if a.json:
        a.json.write_text(json.dumps({**info, "rows": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
