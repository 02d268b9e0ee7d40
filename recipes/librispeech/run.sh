#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12) / Mini LibriSpeech (OpenSLR 31): read English audiobooks, 16 kHz.
# Trains a character BiLSTM-CTC model on the chosen training subsets, selects checkpoints and the
# LM weight on the dev subset, and reports test-clean and test-other.
#
# NEEDS A GPU for train-clean-100 and larger: conf/train.yaml (train-clean-100) is expected to
# take roughly 2-4 hours on one H100-class GPU (estimate, not yet measured), most of it feature
# extraction in the first epoch. Mini LibriSpeech with conf/mini.yaml runs on a CPU (hours).
#
#   bash recipes/librispeech/run.sh --corpus /data/LibriSpeech      # local copy (or its parent)
#   bash recipes/librispeech/run.sh                                 # downloads into data/download
#   bash recipes/librispeech/run.sh --train-subsets "train-clean-5" --dev-subset dev-clean-2 \
#       --config recipes/librispeech/conf/mini.yaml                 # Mini LibriSpeech
#   bash recipes/librispeech/run.sh --train-subsets "train-clean-100 train-clean-360 train-other-500"
#   bash recipes/librispeech/run.sh --smoke                         # fake miniature corpus
#
# Stages: 0 download (without --corpus) + manifests | 1 word 3-gram LM from the training
# transcripts only | 2 train | 3 greedy and beam+LM decoding (LM weight tuned on dev) |
# 4 score, results table in RESULTS.md.
set -euo pipefail
recipe=librispeech
here=$(cd "$(dirname "$0")" && pwd)
declare -A recipe_opts=([--train-subsets]=train_subsets [--dev-subset]=dev_subset
                        [--test-subsets]=test_subsets)
train_subsets="train-clean-100" dev_subset="dev-clean" test_subsets="test-clean test-other"
source "$here/../common.sh"
parse_args "$@"
read -r -a train_list <<< "$train_subsets"
read -r -a test_list <<< "$test_subsets"
train_name=$(IFS=+; echo "${train_list[*]}")

if stage 0 "corpus and manifests"; then
    subsets=("${train_list[@]}" "$dev_subset" "${test_list[@]}")
    if [ "$smoke" = 1 ]; then
        fake_corpus
    elif [ -z "$corpus" ]; then
        timed prepare download "$asr" prepare librispeech --download --corpus "$data/download" \
            --subsets "${subsets[@]}" --out "$data"
        corpus=$data/download
    fi
    timed prepare manifests "$asr" prepare librispeech --corpus "$corpus" --subsets "${subsets[@]}" --out "$data"
    # Several training subsets train as one manifest.
    for s in "${train_list[@]}"; do cat "$data/librispeech_$s.jsonl"; done > "$data/train_$train_name.jsonl"
fi

tests=()
for s in "${test_list[@]}"; do tests+=("$s=$data/librispeech_$s.jsonl"); done
dev_name=$dev_subset
model_stages "$exp" "$data/train_$train_name.jsonl" "$data/librispeech_$dev_subset.jsonl" "${tests[@]}"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" "$dev_subset" "${test_list[@]}")
    publish_results "LibriSpeech $train_name, $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" "${reports[@]}"
fi
