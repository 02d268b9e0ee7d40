#!/usr/bin/env bash
# CMU AN4 ("census"): spelled words, digits and commands, 16 kHz close-talking speech
# (0.64 h of training speech). A CPU recipe: 22 minutes on 2 cores, end to end (measured, RESULTS.md).
#
#   bash recipes/an4/run.sh --corpus ../shared/data/an4   # git-mirror or an4_sphere.tar.gz layout
#   bash recipes/an4/run.sh --corpus DIR --stage 3        # re-decode an existing model
#   bash recipes/an4/run.sh --smoke                       # fake miniature corpus, tiny model
#
# Stages: 0 manifests; dev = all utterances of 8 held-out training speakers (the list in
# DIR/splits/dev_speakers.txt when the corpus folder has one, else a fixed-seed draw) | 1 word
# 3-gram LM from the training transcripts only | 2 train (a killed run resumes) | 3 greedy and
# beam+LM decoding; LM weight, word and silence scores tuned on dev | 4 score; RESULTS.md table.
# The official test part (wav/an4test_clstk + etc/an4_test.transcription) is decoded and scored
# whenever the corpus folder has it, with settings chosen on dev only.
set -euo pipefail
recipe=an4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"
parse_args "$@"

if stage 0 "corpus and manifests"; then
    [ "$smoke" = 1 ] && fake_corpus
    [ -n "$corpus" ] || die "--corpus DIR is required (AN4 has no download here)"
    [ -d "$corpus" ] || die "corpus folder not found: $corpus"
    dev_args=()
    if [ -f "$corpus/splits/dev_speakers.txt" ]; then
        read -r -a spk < <(tr "\n" " " < "$corpus/splits/dev_speakers.txt") || true
        dev_args=(--dev-speakers "${spk[@]}")
    fi
    timed prepare manifests "$asr" prepare an4 --corpus "$corpus" --out "$data" "${dev_args[@]}"
fi

sets=()
[ -f "$data/an4_test.jsonl" ] && sets+=("test=$data/an4_test.jsonl")
model_stages "$exp" "$data/an4_train.jsonl" "$data/an4_dev.jsonl" "${sets[@]}"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" dev test)
    publish_results "AN4, $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$exp/config.yaml" "${reports[@]}"
fi
