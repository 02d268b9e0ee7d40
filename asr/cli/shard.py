"""``asr shard``: a manifest's audio and metadata -> tar shards (WebDataset) + shards.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from asr.cli.common import POSITIVE_FLOAT, POSITIVE_INT


def add_parser(sub) -> None:
    p = sub.add_parser("shard", help="write a manifest's audio and metadata into tar shards")
    p.add_argument("manifest", help="manifest (JSONL or JSONL.gz)")
    p.add_argument("--out", required=True, help="output folder (shard-NNNNNN.tar, shards.json)")
    p.add_argument("--shard-size", type=POSITIVE_INT, default=None,
                   help="utterances per shard at most (default 1000 without --max-shard-mb)")
    p.add_argument("--max-shard-mb", type=POSITIVE_FLOAT, default=None,
                   help="megabytes (10^6 bytes) of audio and metadata per shard at most")
    p.add_argument("--audio", choices=["copy", "flac"], default="copy",
                   help="copy: the audio files' bytes as they are (segments of longer files "
                        "become FLAC); flac: re-encode all as 24-bit FLAC")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out unreadable audio (listed in shards.json) instead of stopping")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    from asr.shards import ShardSettings, write_shards

    size = a.shard_size if a.shard_size or a.max_shard_mb else 1000
    mb = int(a.max_shard_mb * 1e6) if a.max_shard_mb else None
    report = write_shards(a.manifest, a.out, ShardSettings(size, mb, a.audio, a.skip_bad))
    print(report.summary(Path(a.out)))
    return 0
