#!/usr/bin/env bash
# CMU AN4 ("census"): spelled words, digits and commands, 16 kHz close-talking speech
# (0.64 h of training speech). A CPU recipe: 120 epochs of a 4x256 BiLSTM; 33.6 min end to end on a 2-core
# AVX-512 (bf16) machine (measured, RESULTS.md); on one without AVX-512, 35 min for 40 epochs
# (measured), so about 80-95 min for the default 120 (estimate, 40-47 s/epoch measured there).
#
#   bash recipes/an4/run.sh                  # downloads an4_sphere.tar.gz (64 MB) into data/download
#   bash recipes/an4/run.sh --corpus DIR      # a local copy (git-mirror or an4_sphere.tar.gz layout)
#   bash recipes/an4/run.sh --corpus DIR --stage 3        # re-decode an existing model
#   bash recipes/an4/run.sh --smoke           # fake miniature corpus, tiny model
#   --download-source auto|cmu|github (default auto: CMU, then the git mirror github.com/cmusphinx/an4)
#   --download-url URL: another address of the archive. No checksum is published for AN4: the first
#   download's SHA-256 is recorded in data/download/<archive>.digest.json and later runs check it.
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
declare -A recipe_opts=([--download-source]=download_source [--download-url]=download_url)
download_source=auto download_url=""
default_models=1  # --models 2 combines two seeds: +1 error with beam+LM, worse greedy (RESULTS.md)
source "$here/../common.sh"
parse_args "$@"

if stage 0 "corpus and manifests"; then
    [ "$smoke" = 1 ] && fake_corpus
    if [ -z "$corpus" ]; then
        # download (or find the earlier download) and write the manifests
        timed prepare download "$asr" prepare an4 --download --corpus "$data/download" --out "$data" \
            --source "$download_source" ${download_url:+--url "$download_url"}
    else
        [ -d "$corpus" ] || die "corpus folder not found: $corpus"
        dev_args=()
        if [ -f "$corpus/splits/dev_speakers.txt" ]; then
            read -r -a spk < <(tr "\n" " " < "$corpus/splits/dev_speakers.txt") || true
            dev_args=(--dev-speakers "${spk[@]}")
        fi
        timed prepare manifests "$asr" prepare an4 --corpus "$corpus" --out "$data" "${dev_args[@]}"
    fi
fi

sets=()
[ -f "$data/an4_test.jsonl" ] && sets+=("test=$data/an4_test.jsonl")
model_stages "$exp" "$data/an4_train.jsonl" "$data/an4_dev.jsonl" "${sets[@]}"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" dev test)
    publish_results "AN4, $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" "${reports[@]}"
fi
