#!/usr/bin/env bash
# TED-LIUM release 3 (OpenSLR 51): 452 h of English TED talks, 16 kHz, segmented by the STM
# files; the legacy dev/test sets (8 and 11 talks) are reported. Text is lower case as in the
# corpus, <unk> dropped, split clitics joined back ("i 'm" -> "i'm").
#
# NEEDS A GPU: conf/train.yaml is expected to take roughly 1-2 days on one H100-class GPU
# (estimate, not yet measured): with the feature cache off (452 h does not fit in RAM) the
# trainer recomputes features on the CPU every epoch, about 30-60 minutes per epoch.
# The download is about 50 GB.
#
#   bash recipes/tedlium/run.sh --corpus /data/TEDLIUM_release-3   # local copy (or its parent)
#   bash recipes/tedlium/run.sh                                    # downloads into data/download
#   bash recipes/tedlium/run.sh --smoke                            # fake miniature corpus
#
# Stages: 0 download (without --corpus) + manifests | 1 word 3-gram LM from the training
# transcripts only | 2 train | 3 greedy and beam+LM decoding (LM weight tuned on dev) |
# 4 score, results table in RESULTS.md.
set -euo pipefail
recipe=tedlium
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../common.sh"
parse_args "$@"

if stage 0 "corpus and manifests"; then
    if [ "$smoke" = 1 ]; then
        fake_corpus
    elif [ -z "$corpus" ]; then
        timed prepare download "$asr" prepare tedlium --download --corpus "$data/download" --out "$data"
        corpus=$data/download/TEDLIUM_release-3
    fi
    timed prepare manifests "$asr" prepare tedlium --corpus "$corpus" --out "$data"
fi

model_stages "$exp" "$data/tedlium_train.jsonl" "$data/tedlium_dev.jsonl" "test=$data/tedlium_test.jsonl"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" dev test)
    publish_results "TED-LIUM 3 (legacy dev/test), $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" "${reports[@]}"
fi
