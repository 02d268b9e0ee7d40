"""Benchmark: decoding speed at equal accuracy. Greedy and our beam search + LM (flashlight
through torchaudio, lexicon + n-gram) against pyctcdecode (with the ``kenlm`` module) at the
same beam width, on the same log-probs of a character model, one thread.

The log-probs of every manifest utterance are computed once (the model's own front-end,
``Recognizer.emissions``) and not timed. Each decoder then decodes all of them; the time is the
best of ``--repeats`` passes, reported as ms per audio second. Each beam decoder gets its LM
weight and word score chosen on the same manifest by the same grid (``--alphas``,
``--betas``; ours also keeps the silence score of its ``decode.yaml``), so speed is compared at
each one's best accuracy; the WER of each is printed beside its speed. The decoders' timed
passes take turns, round after round (``timed``), so that the ratios hold on a shared
machine. pyctcdecode gets the same ARPA LM and, as unigrams, the words of our lexicon.
pyctcdecode is not a dependency of the package (its metadata pins numpy<2): install it beside
it to run this script.

    python bench/decode.py MODEL.pt MANIFEST [--decode-yaml DIR/decode.yaml] [--beam 50]
        [--beam-size-token K] [--beam-threshold X] [--prune-grid 0:25,12:10] [--repeats 3]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from asr.decode.beam import BeamDecoder
from asr.decode.greedy import GreedyDecoder
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.scoring import error_counts
from asr.tokenizer import BLANK, SPACE
from asr.tune import load_beam_config


def timed(fns: dict, repeats: int) -> dict[str, tuple[float, list[str]]]:
    """Best-of-``repeats`` seconds and output of each named decoding pass. The passes take
    turns within each round (the order rotating), so a slow spell of a shared machine falls on
    all of them, not on whichever ran last."""
    best = {k: (float("inf"), []) for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            t = time.perf_counter()
            out = fns[k]()
            best[k] = min(best[k], (time.perf_counter() - t, out), key=lambda x: x[0])
    return best


def wer(refs: list[str], hyps: list[str]) -> float:
    return 100 * error_counts(refs, hyps)[0].rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("manifest")
    ap.add_argument("--decode-yaml", default=None,
                    help="our beam settings (default: decode.yaml beside the model)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--beam-size-token", type=int, default=None,
                    help="ours: tokens tried per frame (default: the decode.yaml's)")
    ap.add_argument("--beam-threshold", type=float, default=None,
                    help="ours: prune this far below the best (default: the decode.yaml's)")
    ap.add_argument("--prune-grid", default="",
                    help="ours, extra rows: TOKENS:THRESHOLD pairs, e.g. 0:25,12:10 (0 = all "
                         "tokens), each timed at our tuned LM weight and word score")
    ap.add_argument("--alphas", default="0.25,0.5,1,1.5,2")
    ap.add_argument("--betas", default="-1,0,1,2,3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from pyctcdecode import build_ctcdecoder

    rec = load_model(a.model)
    tok = rec.tokenizer
    if getattr(tok, "separator", None) != SPACE:
        raise SystemExit("bench/decode.py: needs a character model (tokenizer.kind=char)")
    utts = read_manifest(a.manifest)
    for u in utts:
        u.text = rec.cfg.text(u.text)
    by_id, lps = {u.id: u for u in utts}, {}
    with torch.no_grad():
        for ids, log_probs, lens in rec.emissions(utts):
            for i, lp, n in zip(ids, log_probs, lens):
                lps[i] = lp[: int(n)].contiguous()
    ids = [u.id for u in utts]
    refs = [by_id[i].text for i in ids]
    audio_s = sum(by_id[i].duration for i in ids)
    ms = lambda t: 1000 * t / audio_s

    yaml_path = Path(a.decode_yaml) if a.decode_yaml else Path(a.model).parent / "decode.yaml"
    base = load_beam_config(yaml_path)
    base = dataclasses.replace(base, beam_size=a.beam)
    if a.beam_size_token is not None:
        base = dataclasses.replace(base, beam_size_token=a.beam_size_token)
    if a.beam_threshold is not None:
        base = dataclasses.replace(base, beam_threshold=a.beam_threshold)
    alphas = [float(x) for x in a.alphas.split(",")]
    betas = [float(x) for x in a.betas.split(",")]

    def ours(cfg):
        dec = BeamDecoder(tok, cfg)
        return lambda: [dec(lps[i].unsqueeze(0), None, 0.0)[0][0].text for i in ids]

    greedy = GreedyDecoder(tok)

    # our tuned point: the grid, plus the decode.yaml's own point
    grid = [(base.lm_weight, base.word_score)] + list(itertools.product(alphas, betas))
    ours_scores = {}
    for al, be in grid:
        hyps = ours(dataclasses.replace(base, lm_weight=al, word_score=be))()
        ours_scores[(al, be)] = wer(refs, hyps)
    o_al, o_be = min(ours_scores, key=lambda k: (ours_scores[k], k != grid[0]))

    labels = ["" if s == BLANK else (" " if s == SPACE else s) for s in tok.symbols]
    words = sorted({line.split()[0] for line in Path(base.lexicon).read_text().splitlines()
                    if line.strip()}) if base.lexicon else None
    peer_scores, peers = {}, {}
    np_lps = {i: lps[i].float().numpy() for i in ids}
    for al, be in itertools.product(alphas, betas):
        dec = build_ctcdecoder(labels, kenlm_model_path=base.lm or None, unigrams=words,
                               alpha=al, beta=be)
        peers[(al, be)] = dec
        hyps = [dec.decode(np_lps[i], beam_width=a.beam).upper() for i in ids]
        peer_scores[(al, be)] = wer(refs, hyps)
    p_al, p_be = min(peer_scores, key=lambda k: peer_scores[k])
    peer = peers[(p_al, p_be)]
    grid_cfgs = {}
    for pair in filter(None, a.prune_grid.split(",")):
        k, th = pair.split(":")
        grid_cfgs[pair] = dataclasses.replace(base, lm_weight=o_al, word_score=o_be,
                                              beam_size_token=int(k), beam_threshold=float(th))
    times = timed({
        "greedy": lambda: [greedy(lps[i].unsqueeze(0), None, 0.0)[0][0].text for i in ids],
        "ours": ours(dataclasses.replace(base, lm_weight=o_al, word_score=o_be)),
        "peer": lambda: [peer.decode(np_lps[i], beam_width=a.beam).upper() for i in ids],
        **{pair: ours(cfg) for pair, cfg in grid_cfgs.items()}}, a.repeats)
    (t_greedy, h_greedy), (t_ours, h_ours), (t_peer, h_peer) = (
        times["greedy"], times["ours"], times["peer"])

    rows = [
        {"decoder": "greedy (ours)", "wer": wer(refs, h_greedy), "ms_per_audio_s": ms(t_greedy)},
        {"decoder": f"beam {a.beam} + lexicon + LM (ours; LM weight {o_al:g}, word score "
                    f"{o_be:g}, silence {base.sil_score:g}; tokens per frame "
                    f"{base.beam_size_token or 'all'}, threshold {base.beam_threshold:g})",
         "wer": wer(refs, h_ours), "ms_per_audio_s": ms(t_ours)},
        {"decoder": f"pyctcdecode beam {a.beam} + LM (alpha {p_al:g}, beta {p_be:g}; its "
                    f"default pruning: token_min_logp -5, beam_prune_logp -10)",
         "wer": wer(refs, h_peer), "ms_per_audio_s": ms(t_peer)},
    ]
    for pair, cfg in grid_cfgs.items():
        t_k, h_k = times[pair]
        rows.append({"decoder": f"beam {a.beam} + lexicon + LM (ours, same LM weight and word "
                                f"score; tokens per frame {cfg.beam_size_token or 'all'}, "
                                f"threshold {cfg.beam_threshold:g})",
                     "wer": wer(refs, h_k), "ms_per_audio_s": ms(t_k)})
    speedup = t_peer / t_ours
    print(f"# decoding: {platform.processor() or platform.machine()}, nproc {os.cpu_count()}, "
          f"1 thread, {len(ids)} utterances, {audio_s:.0f} s of audio, LM {base.lm}, best of "
          f"{a.repeats}")
    print("| decoder | WER % | ms per audio second | real-time factor |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['wer']:.2f} | {r['ms_per_audio_s']:.3f} | "
              f"{r['ms_per_audio_s'] / 1000:.5f} |")
    print(f"ours vs pyctcdecode: {speedup:.2f}x the speed")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "rows": rows, "speedup_vs_pyctcdecode": speedup, "audio_s": audio_s,
            "ours_grid": {f"{k[0]},{k[1]}": v for k, v in ours_scores.items()},
            "peer_grid": {f"{k[0]},{k[1]}": v for k, v in peer_scores.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
