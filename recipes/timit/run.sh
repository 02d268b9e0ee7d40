#!/usr/bin/env bash
# TIMIT (LDC93S1, licensed: bring your own copy): phone recognition, reported as phone error
# rate (PER) on the 24-speaker core test set, 39 folded phones (Lee & Hon 1989), SA sentences
# excluded; the standard 50-speaker dev set selects checkpoints and the phone-LM weight.
# The model is trained on the 39 folded phones directly (tokenizer.kind=phone), so "WER" in
# the reports below is the PER.
#
# GPU recommended: conf/train.yaml is about 3 hours on a 2-core CPU (extrapolated from FSDD
# throughput, not measured) and minutes on a GPU.
#
#   bash recipes/timit/run.sh --corpus /data/TIMIT      # folder holding TRAIN/ and TEST/
#   bash recipes/timit/run.sh --smoke                   # fake miniature TIMIT tree
#
# Stages: 0 manifests (61 -> 39 phones, q removed) | 1 phone bigram LM from the training
# transcriptions only | 2 train | 3 greedy and beam search with the phone LM (lexicon-free: the
# LM's "words" are the phones) | 4 score, results table in RESULTS.md.
set -euo pipefail
recipe=timit
here=$(cd "$(dirname "$0")" && pwd)
lm_order=2
source "$here/../common.sh"
parse_args "$@"

if stage 0 "manifests"; then
    if [ "$smoke" = 1 ]; then
        fake_corpus
    fi
    [ -n "$corpus" ] || die "TIMIT is licensed by the LDC and cannot be downloaded here: pass --corpus DIR"
    timed prepare manifests "$asr" prepare timit --corpus "$corpus" --phones 39 --out "$data"
fi

model_stages "$exp" "$data/timit_train.jsonl" "$data/timit_dev.jsonl" "test=$data/timit_test.jsonl"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" dev test)
    publish_results "TIMIT core test PER (39 phones), $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" --metric PER "${reports[@]}"
fi
