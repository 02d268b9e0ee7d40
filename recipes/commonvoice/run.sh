#!/usr/bin/env bash
# Mozilla Common Voice, any language: read sentences from many volunteers, MP3 (48 kHz, read and
# resampled to 16 kHz). Common Voice needs a click-through agreement per download, so there is
# no download stage: get the language archive from https://commonvoice.mozilla.org/datasets
# and unpack it. Uses the release's own train/dev/test TSVs (speaker-disjoint).
#
# NEEDS A GPU for any real language: conf/train.yaml is sized for 50-500 h of training audio,
# roughly 1 hour per 50 h of audio on one H100-class GPU (estimate, not yet measured).
#
#   bash recipes/commonvoice/run.sh --corpus /data/cv-corpus-17.0-2024-03-15 --lang cy
#   bash recipes/commonvoice/run.sh --corpus /data/cv-corpus-17.0-2024-03-15/cy   # the language folder
#   bash recipes/commonvoice/run.sh --corpus ... --lang ja tokenizer.kind=bpe tokenizer.vocab_size=2000
#   bash recipes/commonvoice/run.sh --smoke                          # fake miniature corpus
#
# Text is lower-cased and stripped of punctuation (apostrophes kept) for training, and scored
# the same way (asr score --lowercase --strip-punct). Characters suit alphabetic scripts; use
# tokenizer.kind=bpe for large character sets.
# Stages: 0 manifests | 1 word 3-gram LM from the training sentences only | 2 train |
# 3 greedy and beam+LM decoding (LM weight tuned on dev) | 4 score, results table in RESULTS.md.
set -euo pipefail
recipe=commonvoice
here=$(cd "$(dirname "$0")" && pwd)
declare -A recipe_opts=([--lang]=lang)
lang=""
score_opts=(--lowercase --strip-punct)
source "$here/../common.sh"
parse_args "$@"

if stage 0 "manifests"; then
    if [ "$smoke" = 1 ]; then
        fake_corpus
        lang=${lang:-cy}
    fi
    [ -n "$corpus" ] || die "Common Voice downloads need an agreement: pass --corpus DIR (and --lang)"
    lang_args=()
    [ -n "$lang" ] && lang_args=(--lang "$lang")
    timed prepare manifests "$asr" prepare commonvoice --corpus "$corpus" "${lang_args[@]}" --out "$data"
fi

model_stages "$exp" "$data/commonvoice_train.jsonl" "$data/commonvoice_dev.jsonl" \
    "test=$data/commonvoice_test.jsonl"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" dev test)
    publish_results "Common Voice${lang:+ $lang}, $(basename "$config")" "${lang:-cv}-$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" "${reports[@]}"
fi
