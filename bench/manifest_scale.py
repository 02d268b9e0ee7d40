"""Benchmark: a manifest of a million utterances, from nothing to the first training batch.

Writes a few real WAV files (``--wavs``, 1 to 15 s of noise-like audio) and a JSONL manifest of
``--utts`` lines pointing at them in turn (texts of ~80 characters, 2000 speakers); with
``--gz`` the manifest is gzipped. Then, in this one process, it measures:

- index build: ``LazyManifest`` reading the manifest once (cold: no cached index);
- index load: opening it again (the cached ``<manifest>.index/`` is valid);
- first batch: from an open index, the frames of every utterance, the epoch's batch plan
  (``asr.data.make_batches``, as training does) and the first batch: its lines read by random
  access, its audio loaded and its features (``asr.features``, fbank 80) computed and padded
  (``asr.data.collate``). "cold" adds the index build, "warm" the index load;
- shard plan: ``ShardStream`` planning one epoch of the same durations cut into shards of 1000
  for 8 ranks x 4 workers (from the index alone; no tar is read);
- peak RSS of the process (VmHWM), and after importing torch (the floor).

    python bench/manifest_scale.py [--utts 1000000] [--gz] [--dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.corpus import LazyManifest
from asr.data import collate, make_batches
from asr.features import FeatureConfig, FeatureExtractor
from asr.shard_batches import ShardStream, StreamConfig
from asr.shards import ShardInfo, ShardSet


def rss_mb(field: str = "VmHWM:") -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_corpus(d: Path, n: int, wavs: int, gz: bool) -> Path:
    rng = np.random.default_rng(0)
    paths, durs = [], []
    for k in range(wavs):
        dur = 1.0 + 14.0 * k / max(1, wavs - 1)
        y = (0.1 * rng.standard_normal(int(dur * 16000))).astype(np.float32)
        p = d / f"w{k}.wav"
        sf.write(str(p), y, 16000, subtype="PCM_16")
        paths.append(str(p))
        durs.append(len(y) / 16000)
    path = d / ("train.jsonl.gz" if gz else "train.jsonl")
    text = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND RUNS AWAY INTO THE DEEP FOREST"
    with (gzip.open(path, "wt", compresslevel=1) if gz else open(path, "w")) as f:
        for i in range(n):
            k = i % wavs
            f.write(json.dumps({"id": f"utt-{i:08d}", "audio_path": paths[k],
                                "duration": durs[k], "text": text, "speaker": f"spk{i % 2000}"})
                    + "\n")
    return path


def first_batch(m: LazyManifest, fcfg: FeatureConfig, extract: FeatureExtractor) -> dict:
    t = time.perf_counter()
    sr = fcfg.sample_rate
    frames = [fcfg.num_frames(int(d * sr)) for d in m.durations.tolist()]
    t_frames = time.perf_counter()
    batches = make_batches(frames, 20000, 64, 10, torch.Generator().manual_seed(0))
    t_plan = time.perf_counter()
    utts = [m[i] for i in batches[0]]
    feats = [extract(load_audio(u.audio_path, sr)) for u in utts]
    batch = collate([u.id for u in utts], feats, [[1]] * len(utts), sum(u.duration for u in utts))
    t_end = time.perf_counter()
    return {"frames_s": t_frames - t, "plan_s": t_plan - t_frames, "read_features_s": t_end - t_plan,
            "first_batch_s": t_end - t, "batches": len(batches), "batch_utts": len(utts),
            "batch_shape": list(batch.feats.shape)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utts", type=int, default=1_000_000)
    ap.add_argument("--wavs", type=int, default=8, help="distinct audio files (1 to 15 s)")
    ap.add_argument("--gz", action="store_true", help="a gzipped manifest")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: temporary)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    a = ap.parse_args()
    torch.set_num_threads(1)
    d = a.dir or Path(tempfile.mkdtemp(prefix="manifest_scale."))
    d.mkdir(parents=True, exist_ok=True)
    res: dict = {"utts": a.utts, "gz": a.gz, "rss_after_imports_mb": rss_mb("VmRSS:")}
    t = time.perf_counter()
    path = write_corpus(d, a.utts, a.wavs, a.gz)
    res["write_manifest_s"] = time.perf_counter() - t
    res["manifest_mb"] = path.stat().st_size / 1e6
    shutil.rmtree(path.with_name(path.name + ".index"), ignore_errors=True)
    fcfg = FeatureConfig()
    extract = FeatureExtractor(fcfg)
    t = time.perf_counter()
    m = LazyManifest(path)
    res["index_build_s"] = time.perf_counter() - t
    res["first_batch_cold"] = first_batch(m, fcfg, extract)
    res["first_batch_cold"]["total_s"] = res["index_build_s"] + res["first_batch_cold"]["first_batch_s"]
    t = time.perf_counter()
    m = LazyManifest(path)
    res["index_load_s"] = time.perf_counter() - t
    assert not m.rebuilt
    res["first_batch_warm"] = first_batch(m, fcfg, extract)
    res["first_batch_warm"]["total_s"] = res["index_load_s"] + res["first_batch_warm"]["first_batch_s"]
    durs = np.asarray(m.durations, dtype=np.float64)
    shards = ShardSet(d, [ShardInfo(f"shard-{k:06d}.tar", len(c), c)
                          for k, c in enumerate(np.array_split(durs, -(-len(durs) // 1000)))],
                      float(durs.sum()))
    t = time.perf_counter()
    st = ShardStream(shards, StreamConfig(speeds=(0.9, 1.0, 1.1)), fcfg, rank=0, world=8, workers=4)
    res["shard_stream_init_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res["shard_batches_per_rank"] = st.set_epoch(0)
    res["shard_plan_epoch_s"] = time.perf_counter() - t
    res["shard_padding"] = st.padding
    res["peak_rss_mb"] = rss_mb()
    rows = [("write manifest (setup)", res["write_manifest_s"], ""),
            ("index build (cold)", res["index_build_s"], f"{a.utts} lines, {res['manifest_mb']:.0f} MB"),
            ("index load (warm)", res["index_load_s"], ""),
            ("first batch, cold (index build + plan + batch)", res["first_batch_cold"]["total_s"],
             f"{res['first_batch_cold']['batches']} batches planned"),
            ("first batch, warm (index load + plan + batch)", res["first_batch_warm"]["total_s"],
             f"frames {res['first_batch_warm']['frames_s']:.2f} s, plan "
             f"{res['first_batch_warm']['plan_s']:.2f} s, audio+features "
             f"{res['first_batch_warm']['read_features_s']:.2f} s"),
            ("shard stream init (frames at 3 speeds)", res["shard_stream_init_s"], ""),
            ("shard plan of an epoch (8 ranks x 4 workers)", res["shard_plan_epoch_s"],
             f"{res['shard_batches_per_rank']} batches per rank, "
             f"{100 * res['shard_padding']:.1f}% of them padding")]
    for name, secs, note in rows:
        print(f"{name:<50} {secs:8.2f} s  {note}")
    print(f"{'peak RSS':<50} {res['peak_rss_mb']:8.0f} MB  (after imports "
          f"{res['rss_after_imports_mb']:.0f} MB)")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    if a.dir is None:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
