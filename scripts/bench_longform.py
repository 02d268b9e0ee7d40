"""Benchmark: long-form transcription of real speech. Concatenates a manifest's utterances
(cycling through them) into one recording of ``--minutes``, transcribes it with
``asr transcribe`` (chunked, stitched at the seams) and transcribes the same utterances one file
each, then reports, from the same run:

- peak resident memory of each ``asr transcribe`` process (``wait4`` rusage);
- wall time and real-time factor of each;
- word differences between the long transcript and the per-utterance transcripts concatenated,
  split into those near a chunk seam and those elsewhere;
- WER of both against the manifest's reference texts.

    python scripts/bench_longform.py MODEL MANIFEST [MANIFEST ...] --minutes 60 --out DIR
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.scoring import error_counts
from asr.chunks import ChunkConfig, iter_chunks


def build_recording(utts, sample_rate: int, seconds: float, path: Path, gap: float = 0.0
                    ) -> list[dict]:
    """Write utterances (cycling) until ``seconds``, ``gap`` seconds of silence between them;
    return the pieces in order."""
    pieces, t = [], 0
    silence = np.zeros(round(gap * sample_rate), dtype=np.float32)
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as f:
        for u in itertools.cycle(utts):
            if t >= seconds * sample_rate:
                break
            wave = load_audio(u.audio_path, sample_rate).numpy()
            f.write(wave)
            pieces.append({"id": u.id, "path": u.audio_path, "text": u.text,
                           "start": t / sample_rate, "end": (t + len(wave)) / sample_rate})
            f.write(silence)
            t += len(wave) + len(silence)
    return pieces


def run_transcribe(args: list[str], stdout: Path) -> dict:
    """Run ``asr transcribe ARGS`` with stdout to a file; its peak RSS and wall time."""
    cmd = [sys.executable, "-m", "asr.cli", "transcribe", *args]
    stderr = stdout.with_suffix(".stderr")
    t0 = time.perf_counter()
    with open(stdout, "w", encoding="utf-8") as out, open(stderr, "w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench_longform: {' '.join(cmd)} failed: "
                         f"{stderr.read_text().strip()[-500:]}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": wall}  # ru_maxrss: KiB on Linux


def seams(path: Path, sample_rate: int, cfg: ChunkConfig) -> np.ndarray:
    """(N, 2) seconds where neighbouring chunks meet: their shared overlap (fixed windows) or
    the cut itself (pause segments)."""
    starts = [c.start for c in iter_chunks(str(path), sample_rate, cfg)][1:]
    return np.array([(s, s + cfg.overlap) for s in starts]).reshape(-1, 2)


def seam_distance(t: float, seam: np.ndarray) -> float:
    """Seconds from ``t`` to the nearest seam."""
    if len(seam) == 0:
        return float("inf")
    return float(np.min(np.maximum(0.0, np.maximum(seam[:, 0] - t, t - seam[:, 1]))))


def compare(pieces: list[dict], per_piece: dict[str, str], long_words: list[dict],
            seam: np.ndarray, near: float) -> dict:
    """Align the long transcript with the per-piece texts in order; classify differences."""
    ref = [(w, p) for p in pieces for w in per_piece[p["path"]].split()]
    hyp = [w["word"] for w in long_words]
    out = jiwer.process_words(" ".join(w for w, _ in ref) or "-", " ".join(hyp) or "-")
    at_seam = elsewhere = 0
    examples = []
    for ch in out.alignments[0]:  # a minimum edit-distance alignment
        i1, i2, j1, j2 = ch.ref_start_idx, ch.ref_end_idx, ch.hyp_start_idx, ch.hyp_end_idx
        if ch.type == "equal":
            continue
        n = max(i2 - i1, j2 - j1)
        if j2 > j1:
            t = long_words[j1]["start"]
        elif long_words:  # deleted in the long transcript: between its neighbours there
            before = long_words[j1 - 1]["end"] if j1 > 0 else long_words[0]["start"]
            after = long_words[j1]["start"] if j1 < len(long_words) else before
            t = (before + after) / 2
        else:
            t = ref[i1][1]["start"]
        d = seam_distance(t, seam)
        if d <= near:
            at_seam += n
        else:
            elsewhere += n
        if len(examples) < 10:
            examples.append({"time": round(t, 2), "seam_distance": round(d, 2),
                             "per_piece": " ".join(w for w, _ in ref[i1:i2]),
                             "long": " ".join(hyp[j1:j2])})
    return {"words_per_piece": len(ref), "words_long": len(hyp), "diff_words_at_seams": at_seam,
            "diff_words_elsewhere": elsewhere, "seams": len(seam),
            "examples": examples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("manifests", nargs="+")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--gap", type=float, default=0.0, help="seconds of silence between utterances")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--segment", default="pause", choices=["pause", "fixed"])
    p.add_argument("--chunk-seconds", type=float, default=30.0)
    p.add_argument("--overlap-seconds", type=float, default=5.0)
    p.add_argument("--pause-seconds", type=float, default=0.25)
    p.add_argument("--pause-db", type=float, default=16.0)
    p.add_argument("--near", type=float, default=1.0,
                   help="a difference this close (s) to a seam counts as at the seam")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rec = load_model(a.model)
    utts = [u for m in a.manifests for u in read_manifest(m)]
    for u in utts:
        u.text = rec.norm(u.text)
    long_path = a.out / "long.wav"
    pieces = build_recording(utts, rec.cfg.features.sample_rate, a.minutes * 60, long_path,
                             a.gap)
    seconds = pieces[-1]["end"]
    common = ["--decoder", "greedy", "--format", "json"]
    chunking = ["--segment", a.segment, "--chunk-seconds", str(a.chunk_seconds),
                "--overlap-seconds", str(a.overlap_seconds), "--pause-seconds",
                str(a.pause_seconds), "--pause-db", str(a.pause_db)]
    long_run = run_transcribe([a.model, str(long_path), *common, *chunking],
                              a.out / "long.jsonl")
    long_json = json.loads((a.out / "long.jsonl").read_text(encoding="utf-8").splitlines()[0])
    paths = sorted({pc["path"] for pc in pieces})
    (a.out / "pieces.txt").write_text("".join(f"{x}\n" for x in paths), encoding="utf-8")
    # Each utterance whole: one fixed window of up to 10 minutes.
    piece_run = run_transcribe([a.model, f"@{a.out / 'pieces.txt'}", *common, "--segment",
                                "fixed", "--chunk-seconds", "600", "--overlap-seconds", "0"],
                               a.out / "pieces.jsonl")
    per_piece = {}
    for line in (a.out / "pieces.jsonl").read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        per_piece[d["audio"]] = d["text"]
    cfg = ChunkConfig(a.chunk_seconds, a.overlap_seconds, segment=a.segment,
                      pause_seconds=a.pause_seconds, pause_db=a.pause_db)
    seam = seams(long_path, rec.cfg.features.sample_rate, cfg)
    cmp = compare(pieces, per_piece, long_json["words"], seam, a.near)
    refs = " ".join(pc["text"] for pc in pieces)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"torch {torch.__version__}",
        "model": a.model, "audio_minutes": round(seconds / 60, 2), "utterances": len(pieces),
        "distinct_files": len(paths), "segment": a.segment, "chunk_seconds": a.chunk_seconds,
        "overlap_seconds": a.overlap_seconds, "pause_seconds": a.pause_seconds,
        "pause_db": a.pause_db,
        "long": {**long_run, "rtf": long_run["wall_s"] / seconds,
                 "wer": error_counts([refs], [long_json["text"]])[0].to_dict()},
        "per_piece": {**piece_run, "rtf": piece_run["wall_s"] / sum(
            sf.info(x).duration for x in paths),
            "wer": error_counts([refs], [" ".join(per_piece[pc["path"]]
                                                  for pc in pieces)])[0].to_dict()},
        "comparison": cmp,
    }
    (a.out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
