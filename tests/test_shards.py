"""Data at scale (issue 14): lazy manifests with a cached index (asr/corpus.py), tar shards
(asr/shards.py, ``asr shard``) and training batches streamed from them (asr/shard_batches.py):
every utterance exactly once per epoch over ranks x workers, equal batch counts per rank,
resumption at a cursor, bounded memory."""

from __future__ import annotations

import collections
import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

import asr.shard_batches as sb_mod
import asr.shards as shards_mod
from asr.audio import load_audio, perturbed_length
from asr.config import DataConfig
from asr.corpus import LazyManifest, sample_cmvn
from asr.data import FeatureSource
from asr.errors import UserError
from asr.features import FeatureConfig, GlobalCMVN
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.shard_batches import ShardStream, StreamConfig, to_batch
from asr.shards import ShardSet, ShardSettings, sample_key, write_shards
from conftest import make_tone_corpus, make_wav, run_cli

FCFG = FeatureConfig()
CFG = StreamConfig(max_frames=400, max_batch=6, num_buckets=2, buffer=9, speeds=(0.9, 1.0, 1.1))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, ShardSet]:
    """67 tone utterances in 14 shards (13 of 5, one of 2)."""
    d = tmp_path_factory.mktemp("shards")
    manifest = make_tone_corpus(d, 67, seed=3)
    write_shards(manifest, d / "sh", ShardSettings(shard_size=5), progress=False)
    return manifest, ShardSet.load(d / "sh")


def _epoch(shards, rank, world=2, workers=2, epoch=0, cursor=0, seed=7, cfg=CFG):
    st = ShardStream(shards, cfg, FCFG, seed=seed, rank=rank, world=world, workers=workers)
    n = st.set_epoch(epoch, cursor)
    return n, [(i, [it.utt.id for it in b.items]) for i, b in st]


# --- asr shard -----------------------------------------------------------------------------------

def test_asr_shard_writes_webdataset_shards_and_index_and_a_rerun_is_a_no_op(tmp_path, capsys):
    manifest = make_tone_corpus(tmp_path, 11, seed=1)
    out = tmp_path / "sh"
    rc, stdout, stderr = run_cli(["shard", manifest, "--out", out, "--shard-size", "4"], capsys)
    assert rc == 0, stderr
    assert "3 shards (3 written now), 11 utterances" in stdout
    index = json.loads((out / "shards.json").read_text())
    assert [s["name"] for s in index["shards"]] == [f"shard-00000{k}.tar" for k in range(3)]
    assert [s["count"] for s in index["shards"]] == [4, 4, 3] and index["utterances"] == 11
    utts = read_manifest(manifest)
    durs = [d for s in index["shards"] for d in s["durations"]]
    assert durs == [u.duration for u in utts]
    assert index["seconds"] == pytest.approx(sum(durs))
    names = []
    for s in index["shards"]:  # WebDataset layout: <key>.json + <key>.wav, manifest order
        with tarfile.open(out / s["name"]) as tf:
            names += tf.getnames()
            for u in utts:
                if f"{sample_key(u.id)}.wav" in tf.getnames():
                    assert tf.extractfile(f"{u.id}.wav").read() == Path(u.audio_path).read_bytes()
                    meta = json.loads(tf.extractfile(f"{u.id}.json").read())
                    assert meta == {"id": u.id, "duration": u.duration, "text": u.text,
                                    "speaker": u.speaker, "sample_rate": 16000,
                                    "audio_path": u.audio_path}
    assert names == [f"{u.id}.{ext}" for u in utts for ext in ("json", "wav")]
    import webdataset as wds  # the shards read with webdataset itself
    keys = [s["__key__"] for s in wds.WebDataset(str(out / "shard-000001.tar"), shardshuffle=False)]
    assert keys == [u.id for u in utts[4:8]]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    rc, stdout, _ = run_cli(["shard", manifest, "--out", out, "--shard-size", "4"], capsys)
    assert rc == 0 and "(up to date)" in stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_a_killed_run_leaves_no_complete_looking_shard_and_a_rerun_redoes_only_that(
        tmp_path, monkeypatch):
    manifest = make_tone_corpus(tmp_path, 12, seed=2)
    out = tmp_path / "sh"
    real, calls = shards_mod._member, []

    def dies_at_the_tenth(u, audio):
        calls.append(u.id)
        if len(calls) == 10:
            raise KeyboardInterrupt  # the run is stopped inside shard 2
        return real(u, audio)

    monkeypatch.setattr(shards_mod, "_member", dies_at_the_tenth)
    with pytest.raises(KeyboardInterrupt):
        write_shards(manifest, out, ShardSettings(shard_size=4), progress=False)
    monkeypatch.setattr(shards_mod, "_member", real)
    assert sorted(p.name for p in out.iterdir()) == [
        "shard-000000.done", "shard-000000.tar", "shard-000001.done", "shard-000001.tar"]
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # a SIGKILL mid-write: a temporary file of a dead writer, and a tar renamed before its .done
    (out / ".shard-000002.tar.999999999.x.tmp").write_bytes(b"partial")
    (out / "shard-000002.tar").write_bytes(b"half a shard")
    report = write_shards(manifest, out, ShardSettings(shard_size=4), progress=False)
    assert (report.shards, report.written, report.utterances) == (3, 1, 12)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in done} == done
    assert not list(out.glob(".*.tmp"))
    assert [u.id for u in read_manifest(manifest)] == [
        sample_key(json.loads(tarfile.open(out / f"shard-00000{k}.tar").extractfile(m).read())["id"])
        for k in range(3) for m in tarfile.open(out / f"shard-00000{k}.tar").getnames()
        if m.endswith(".json")]
    # a shard changed after its .done (truncated): redone too
    (out / "shard-000001.tar").write_bytes(b"truncated")
    (out / "shards.json").unlink()
    report = write_shards(manifest, out, ShardSettings(shard_size=4), progress=False)
    assert report.written == 2 and ShardSet.load(out).utterances == 12


def test_shard_size_in_megabytes_ids_with_dots_and_segments(tmp_path):
    long_wav = tmp_path / "long.wav"
    make_wav(long_wav, seconds=2.0, noise=0.3)
    utts = [Utterance(f"rec.{i}/a%", str(long_wav), 0.5, "AB", "s", {"offset": 0.5 * i})
            for i in range(4)]
    write_manifest(tmp_path / "m.jsonl", utts)
    out = tmp_path / "sh"
    write_shards(tmp_path / "m.jsonl", out, ShardSettings(None, 50_000), progress=False)
    ss = ShardSet.load(out)
    assert [s.count for s in ss.shards] == [2, 2]  # 0.5 s FLAC ~ 24 kB each
    st = ShardStream(ss, StreamConfig(buffer=4), FCFG, workers=1)
    st.set_epoch(0)
    items = sorted((it for _, b in st for it in b.items), key=lambda it: it.utt.id)
    assert [it.utt.id for it in items] == [u.id for u in utts]
    whole = load_audio(long_wav, 16000)
    for i, it in enumerate(items):  # each segment is its stretch of the long file
        assert it.utt.extra == {"sample_rate": 16000}
        assert torch.equal(it.wave, whole[8000 * i:8000 * (i + 1)])


@pytest.mark.parametrize("case, words", [
    ("missing manifest", ["manifest not found"]),
    ("bad line", ["m.jsonl:2", "missing field(s) text"]),
    ("missing audio", ["utterance b", "audio file not found"]),
    ("out is a file", ["output folder", "is a file"]),
])
def test_asr_shard_errors_are_one_line(tmp_path, capsys, case, words):
    wav = tmp_path / "a.wav"
    make_wav(wav)
    good = json.dumps({"id": "a", "audio_path": str(wav), "duration": 0.5, "text": "A",
                       "speaker": "s"})
    lines = {"bad line": [good, '{"id": "b", "audio_path": "x.wav", "duration": 1, "speaker": "s"}'],
             "missing audio": [good, good.replace('"a"', '"b"').replace("a.wav", "gone.wav")]}
    m = tmp_path / "m.jsonl"
    if case != "missing manifest":
        m.write_text("\n".join(lines.get(case, [good])) + "\n")
    out = tmp_path / "sh"
    if case == "out is a file":
        out.write_text("x")
    rc, stdout, stderr = run_cli(["shard", m, "--out", out], capsys)
    assert rc == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert all(w in stderr for w in words), stderr
    if case == "missing audio":  # --skip-bad leaves it out and lists it
        rc, stdout, stderr = run_cli(["shard", m, "--out", out, "--skip-bad"], capsys)
        assert rc == 0 and "1 utterances" in stdout and "1 unreadable left out" in stdout
        assert json.loads((out / "shards.json").read_text())["skipped"] == [
            ["b", "audio file not found"]]


# --- streaming: exactly once, equal counts, determinism, resumption --------------------------------

def test_world_2_by_workers_2_reads_every_utterance_exactly_once_with_equal_batch_counts(corpus):
    manifest, shards = corpus
    padding = 0
    for epoch in (0, 1):
        counts, per_rank = collections.Counter(), []
        for rank in range(2):
            n, batches = _epoch(shards, rank, epoch=epoch)
            assert [i for i, _ in batches] == list(range(n))
            per_rank.append(len(batches))
            counts.update(uid for _, ids in batches for uid in ids)
            padding += sum(not ids for _, ids in batches)
        assert per_rank[0] == per_rank[1] > 0
        assert counts == {u.id: 1 for u in read_manifest(manifest)}
    assert padding > 0  # the streams' real batch counts differed: padding made them equal


def test_batches_keep_the_frame_budget_and_the_streams_are_balanced(corpus):
    _, shards = corpus
    st = ShardStream(shards, CFG, FCFG, seed=7, rank=0, world=2, workers=2)
    st.set_epoch(0)
    sizes = []
    for _, b in st:
        sr = FCFG.sample_rate
        frames = [FCFG.num_frames(perturbed_length(int(it.utt.duration * sr), sr, it.speed))
                  for it in b.items]
        assert len(b.items) <= CFG.max_batch
        assert len(b.items) <= 1 or max(frames) * len(frames) <= CFG.max_frames
        sizes.append(len(b.items))
        assert all(it.speed in CFG.speeds and it.wave.dtype == torch.float32 for it in b.items)
    assert max(sizes) > 1 and collections.Counter(sizes).most_common(1)[0][0] > 1
    loads = [sum(shards.shards[s].durations.sum() for s in set(p.shard.tolist()))
             for p in sb_mod.plan_epoch(shards, CFG, st.frames, 7, 0, 4)]
    assert max(loads) - min(loads) <= max(s.durations.sum() for s in shards.shards)


def test_the_order_is_a_function_of_seed_and_epoch(corpus):
    _, shards = corpus
    first = _epoch(shards, 0, epoch=0)
    assert _epoch(shards, 0, epoch=0) == first
    assert _epoch(shards, 0, epoch=1) != first
    assert _epoch(shards, 0, epoch=0, seed=8) != first


def test_a_dataloader_with_two_workers_yields_the_in_process_order(corpus):
    _, shards = corpus
    st = ShardStream(shards, CFG, FCFG, seed=7, rank=1, world=2, workers=2)
    st.set_epoch(2, cursor=3)
    inproc = [(i, [it.utt.id for it in b.items]) for i, b in st]
    loader = torch.utils.data.DataLoader(st, batch_size=None, num_workers=2)
    assert [(i, [it.utt.id for it in b.items]) for i, b in loader] == inproc


@pytest.mark.parametrize("cursor", [0, 1, 2, 3, -1, "end"])
def test_resuming_at_a_cursor_reads_exactly_the_remaining_utterances(corpus, monkeypatch, cursor):
    _, shards = corpus
    n, full = _epoch(shards, 1, epoch=3)
    cursor = n if cursor == "end" else cursor % n
    decoded = []
    real = sb_mod.decode_audio
    monkeypatch.setattr(sb_mod, "decode_audio", lambda data, sr, name: decoded.append(name)
                        or real(data, sr, name))
    n2, resumed = _epoch(shards, 1, epoch=3, cursor=cursor)
    assert n2 == n and resumed == full[cursor:]
    assert len(decoded) == sum(len(ids) for _, ids in full[cursor:])  # nothing else decoded


def test_more_streams_than_shards_still_gives_exactly_once(corpus):
    manifest, shards = corpus
    ids, lens = [], set()
    for rank in range(4):
        n, batches = _epoch(shards, rank, world=4, workers=4)
        lens.add(len(batches))
        ids += [u for _, b in batches for u in b]
    assert len(lens) == 1 and sorted(ids) == sorted(u.id for u in read_manifest(manifest))


def test_with_fewer_shards_than_streams_every_rank_gets_data_and_steps_count_real_batches(
        corpus):
    """14 shards for 4 ranks x 4 workers: ties in the dealing go to the ranks in turn, so every
    rank reads shards; ``steps`` counts the batch indices that are not padding on every rank
    (what the LR schedule needs)."""
    manifest, shards = corpus
    per_rank, real = [], set()
    for rank in range(4):
        st = ShardStream(shards, CFG, FCFG, seed=7, rank=rank, world=4, workers=4)
        n = st.set_epoch(0)
        batches = [(i, [it.utt.id for it in b.items]) for i, b in st]
        per_rank.append(sum(len(b) for _, b in batches))
        real |= {i for i, b in batches if b}
        steps = st.steps
    assert all(k > 0 for k in per_rank), per_rank
    assert steps == len(real) <= n


def test_to_batch_gives_the_features_of_the_audio_files(corpus):
    manifest, shards = corpus
    by_id = {u.id: u for u in read_manifest(manifest)}
    source = FeatureSource(FCFG, None, cache=False)
    st = ShardStream(shards, StreamConfig(buffer=10), FCFG, seed=1)
    st.set_epoch(0)
    _, sb = next(iter(st))
    batch, errors = to_batch(sb, source, DataConfig(speed_perturb=[]), None,
                             lambda text: [1 + "ABC ".index(c) for c in text])
    assert not errors and batch.ids == [it.utt.id for it in sb.items]
    for k, uid in enumerate(batch.ids):
        want = source(by_id[uid])
        assert torch.equal(batch.feats[k, :batch.lens[k]], want)


# --- lazy manifests ------------------------------------------------------------------------------

def _gz_manifest(tmp_path, n=30) -> tuple[Path, Path]:
    plain = make_tone_corpus(tmp_path, n, seed=5)
    lines = plain.read_text().splitlines()
    lines[3] = json.dumps({**json.loads(lines[3]), "audio_path": "rel/x.wav", "lang": "en"})
    gz = tmp_path / "m.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write("\ufeff" + "\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n")
    return plain, gz


def test_a_gz_manifest_read_lazily_equals_read_manifest(tmp_path):
    _, gz = _gz_manifest(tmp_path)
    m = LazyManifest(gz)
    want = read_manifest(gz)
    assert m.rebuilt and len(m) == len(want) == 30
    assert list(m) == want and [m[i] for i in (29, 0, 17, -1)] == [want[i] for i in (29, 0, 17, -1)]
    assert want[3].audio_path == str(tmp_path / "rel" / "x.wav") and want[3].extra == {"lang": "en"}
    assert m.durations.tolist() == pytest.approx([u.duration for u in want])
    assert [m.speaker_names[k] for k in m.speakers] == [u.speaker for u in want]
    assert sorted(p.name for p in (tmp_path / "m.jsonl.gz.index").iterdir()) == [
        "meta.json", "rows.npy", "text.jsonl"]
    again = LazyManifest(gz)
    assert not again.rebuilt and list(again.iter_range(5, 9)) == want[5:9]


def test_the_cached_index_is_rebuilt_when_the_manifest_changes(tmp_path):
    plain, gz = _gz_manifest(tmp_path)
    for path in (plain, gz):
        assert LazyManifest(path).rebuilt and not LazyManifest(path).rebuilt
    lines = plain.read_text().splitlines()
    plain.write_text("\n".join(lines[1:]) + "\n")  # one line fewer
    m = LazyManifest(plain)
    assert m.rebuilt and list(m) == read_manifest(plain)
    st = plain.stat()  # same size, other content, other mtime
    plain.write_text(plain.read_text().replace('"spk0"', '"spkX"'))
    os.utime(plain, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    m = LazyManifest(plain)
    assert m.rebuilt and "spkX" in m.speaker_names and list(m) == read_manifest(plain)
    with gzip.open(gz, "at") as f:
        f.write(lines[0].replace('"id": "', '"id": "new-') + "\n")
    assert LazyManifest(gz).rebuilt and LazyManifest(gz)[-1].id.startswith("new-")
    with gzip.open(gz, "at") as f:  # duplicate ids: read_manifest's message
        f.write(lines[0] + "\n")
    with pytest.raises(UserError) as lazy:
        LazyManifest(gz)
    with pytest.raises(UserError) as eager:
        read_manifest(gz)
    assert str(lazy.value) == str(eager.value) and "duplicate id" in str(lazy.value)


def test_sample_cmvn_is_the_statistics_of_a_seeded_sample(tmp_path):
    m = LazyManifest(make_tone_corpus(tmp_path, 20, seed=4))
    source = FeatureSource(FCFG, None, cache=False)
    a = sample_cmvn(m, source.raw, FCFG.dim, n=6, seed=3)
    assert all(torch.equal(a[k], sample_cmvn(m, source.raw, FCFG.dim, 6, 3)[k]) for k in a)
    assert not torch.equal(a["mean"], sample_cmvn(m, source.raw, FCFG.dim, 6, 4)["mean"])
    full = GlobalCMVN(FCFG.dim)
    for u in m:
        full.accumulate(source.raw(u))
    everything = sample_cmvn(m, source.raw, FCFG.dim, n=10**6, seed=0)
    assert all(torch.allclose(everything[k], full.stats()[k]) for k in a)


MEMORY_SCRIPT = r"""
import json, sys
def kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
from asr.corpus import LazyManifest
base = kb("VmRSS:")
m = LazyManifest(sys.argv[1])
chars = sum(len(u.text) for u in m)
picks = [m[i].id for i in range(0, len(m), 1009)]
print(json.dumps({"n": len(m), "chars": chars, "grew_mb": (kb("VmHWM:") - base) / 1024}))
"""


def test_indexing_and_iterating_200k_lines_keeps_memory_flat(tmp_path):
    n, text = 200_000, "A B C " * 50
    with open(tmp_path / "big.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"utt-{i:07d}", "audio_path": f"/audio/{i}.flac",
                                "duration": 1 + i % 17, "text": text, "speaker": f"s{i % 977}"})
                    + "\n")
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "big.jsonl")],
                         capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    got = json.loads(out.stdout)
    assert got["n"] == n and got["chars"] == n * len(text)
    assert got["grew_mb"] < 40, got  # the text alone is 60 MB; the index 3.2 MB


@pytest.mark.parametrize("bad", [
    b'{"id": "x"', b"[1, 2]", b'{"id": "x", "audio_path": "a.wav", "duration": 1, "speaker": "s"}',
    b'{"id": 5, "audio_path": "a.wav", "duration": 1, "text": "A", "speaker": "s"}',
    b'{"id": "x", "audio_path": "a.wav", "duration": -1, "text": "A", "speaker": "s"}',
    b'{"id": "x", "audio_path": "a.wav", "duration": true, "text": "A", "speaker": "s"}',
    b'{"id": "x", "audio_path": "a.wav", "duration": 1, "offset": "0", "text": "A", "speaker": "s"}',
    b'{"id": "x", "audio_path": "a.wav", "duration": 1, "text": "\xff", "speaker": "s"}',
    b'{"id": "u1", "audio_path": "a.wav", "duration": 1, "text": "A", "speaker": "s"}',  # dup
])
def test_a_bad_line_gives_read_manifests_error(tmp_path, bad):
    good = [json.dumps({"id": f"u{i}", "audio_path": "a.wav", "duration": 1.0, "text": "A",
                        "speaker": "s"}).encode() for i in range(2500)]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(good[:1700] + [bad] + good[1700:]) + b"\n")
    with pytest.raises(UserError) as eager:
        read_manifest(path)
    with pytest.raises(UserError) as lazy:
        LazyManifest(path)
    assert str(lazy.value) == str(eager.value)
    assert not (tmp_path / "m.jsonl.index" / "meta.json").exists()


def test_flac_shards_decode_to_the_source_samples(tmp_path):
    manifest = make_tone_corpus(tmp_path, 3, seed=6)
    write_shards(manifest, tmp_path / "sh", ShardSettings(audio="flac"), progress=False)
    with tarfile.open(tmp_path / "sh" / "shard-000000.tar") as tf:
        assert sorted(n.rsplit(".", 1)[1] for n in tf.getnames()) == ["flac"] * 3 + ["json"] * 3
    st = ShardStream(tmp_path / "sh", StreamConfig(buffer=3), FCFG)
    st.set_epoch(0)
    by_id = {u.id: u for u in read_manifest(manifest)}
    items = [it for _, b in st for it in b.items]
    assert len(items) == 3
    for it in items:
        assert torch.equal(it.wave, load_audio(by_id[it.utt.id].audio_path, 16000))
