"""``asr transcribe``: audio files of any length -> txt, json, srt or vtt. Inputs are files,
directories (searched recursively for audio) or ``@list.txt`` files; an input that yields
nothing costs one error line, not the batch (exit 1 when any input failed)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

from asr.cli.common import (NONNEG_FLOAT, NONNEG_INT, POSITIVE_FLOAT, POSITIVE_INT,
                            add_decoder_arguments)
from asr.errors import UserError
from asr.subtitles import FORMATS

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist",
                              ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf", ".rf64",
                              ".voc", ".wv"})


NUMBER_FLAGS = {  # flag -> (type, default, help)
    "--chunk-seconds": (POSITIVE_FLOAT, 30.0, "fixed: window length; pause: longest segment"),
    "--overlap-seconds": (NONNEG_FLOAT, 5.0, "fixed: window overlap"),
    "--pause-seconds": (POSITIVE_FLOAT, 0.25, "pause: shortest silence that ends a segment"),
    "--pause-db": (POSITIVE_FLOAT, 16.0, "pause: frames this many dB above the noise floor are "
                                         "speech"),
    "--batch-size": (POSITIVE_INT, 4, "chunks per forward pass"),
    "--max-cue-seconds": (POSITIVE_FLOAT, 5.0, "srt/vtt cue length"),
    "--max-cue-chars": (POSITIVE_INT, 84, "srt/vtt cue characters"),
}


def add_parser(sub) -> None:
    tr = sub.add_parser("transcribe", help="transcribe audio of any length to txt/json/srt/vtt")
    tr.add_argument("model", help="model file (model.pt, or model.onnx from asr export)")
    tr.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="audio files, directories (searched recursively) or @list.txt")
    tr.add_argument("-o", "--out", type=Path, help="output folder (default: stdout)")
    tr.add_argument("--format", default="txt", choices=FORMATS)
    tr.add_argument("--with-names", action="store_true", help="txt on stdout: prefix the file")
    tr.add_argument("--segment", default="pause", choices=["pause", "fixed"],
                    help="long audio: cut at pauses into utterance-sized segments (pause), or "
                         "overlapping fixed windows joined at whole words (fixed)")
    tr.add_argument("--endpoint", choices=["energy", "vad"], default="energy",
                    help="pause: what finds the pauses: the energy above the noise floor "
                         "(energy) or silero-vad (vad: pip install 'asr[vad]'; fewer cuts "
                         "inside words in noise)")
    for flag, (tp, default, help_) in NUMBER_FLAGS.items():
        tr.add_argument(flag, type=tp, default=default, help=f"{help_} ({default:g})")
    tr.add_argument("--whole-seconds", type=POSITIVE_FLOAT, default=None,
                    help="pause: a file no longer than this is decoded whole (default: the "
                         "model's longest training utterance, or --chunk-seconds)")
    tr.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    tr.add_argument("--threads", type=NONNEG_INT, default=0,
                    help="torch CPU threads (0: default)")
    add_decoder_arguments(tr)
    tr.set_defaults(func=run)


def expand_inputs(items: Iterable[str]) -> list[tuple[str, UserError | None]]:
    """``(path, None)`` per audio file: files as given, directories searched recursively for
    audio files (sorted), ``@list`` files read for one path a line (relative paths are relative
    to the list's folder); ``(item, UserError)`` for an item that yields no file."""
    out: list[tuple[str, UserError | None]] = []
    for item in items:
        if item.startswith("@"):
            lst = Path(item[1:])
            if not lst.is_file():
                out.append((item, UserError(f"list file not found: {lst}")))
                continue
            for line in lst.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line)
                    out.append((str(p if p.is_absolute() else lst.parent / p), None))
        elif os.path.isdir(item):
            found = sorted(str(p) for p in Path(item).rglob("*")
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            out += [(f, None) for f in found] or [(item, UserError(f"no audio files under {item}"))]
        else:
            out.append((item, None))
    return out


def output_names(paths: list[str], fmt: str) -> list[str]:
    """A distinct output file name per input: its stem + ``.fmt`` (``-2``, ``-3``... on clashes)."""
    names, seen = [], set()
    for p in paths:
        stem, n = Path(p).stem, 1
        name = f"{stem}.{fmt}"
        while name in seen:
            n += 1
            name = f"{stem}-{n}.{fmt}"
        seen.add(name)
        names.append(name)
    return names


def run(a: argparse.Namespace) -> int:
    """Returns 0, or 1 when some input could not be transcribed."""
    import json

    import soundfile as sf
    import torch
    from tqdm import tqdm

    from asr.chunks import ChunkConfig
    from asr.cli.common import beam_config, check_device
    from asr.decode.beam import BeamDecoder
    from asr.fileio import atomic_write_text, check_output_dir
    from asr.inference import load_model
    from asr.subtitles import CueConfig, render, transcript_json
    from asr.transcribe import Transcriber

    check_device(a.device)
    if a.out is not None:
        check_output_dir(a.out)
    inputs = expand_inputs(a.inputs)
    bad = [(item, e) for item, e in inputs if e is not None]
    paths = [p for p, e in inputs if e is None]
    if a.out is None and a.format in ("srt", "vtt") and len(paths) > 1:
        raise UserError(f"--format {a.format} with several inputs needs -o DIR")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = ChunkConfig(a.chunk_seconds, a.overlap_seconds, a.batch_size, a.segment,
                      a.pause_seconds, a.pause_db, a.whole_seconds, a.endpoint)
    try:
        cues = CueConfig(a.max_cue_seconds, a.max_cue_chars)
    except ValueError as e:
        raise UserError(str(e)) from None
    rec = load_model(a.model, a.device)
    beam = beam_config(a, a.model)
    tr = Transcriber(rec, None if beam is None else BeamDecoder(rec.tokenizer, beam), cfg)
    names = dict(zip(paths, output_names(paths, a.format))) if a.out else {}
    total = 0.0
    for p in paths:
        try:
            total += sf.info(p).duration
        except Exception:  # reported when it is read
            pass
    failed = len(bad)
    for item, e in bad:
        print(f"asr: error: {e}", file=sys.stderr)
    with tqdm(total=round(total, 1), unit="s", disable=None if total >= 60 else True,
              file=sys.stderr, dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
              "[{elapsed}<{remaining}]") as bar:
        for path, result in tr.transcribe(paths, bar):
            if isinstance(result, UserError):
                failed += 1
                bar.write(f"asr: error: {result}", file=sys.stderr)
                continue
            text = render(result.path, result.duration, result.hypothesis, a.format, cues)
            if a.out is not None:
                atomic_write_text(Path(a.out) / names[path], text)
            elif a.format == "txt" and a.with_names:
                bar.write(f"{path}\t{text}", file=sys.stdout, end="")
            elif a.format == "json":
                bar.write(json.dumps(transcript_json(result.path, result.duration,
                                                     result.hypothesis), ensure_ascii=False),
                          file=sys.stdout)
            else:
                bar.write(text, file=sys.stdout, end="")
    if a.out is not None:
        print(f"{len(paths) - (failed - len(bad))} transcript(s) written to {a.out}",
              file=sys.stderr)
    if failed:
        print(f"asr: {failed} of {len(inputs)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0
