#!/usr/bin/env bash
# yesno (OpenSLR 1): 60 recordings of one man saying Hebrew "yes"/"no" eight times, 8 kHz.
# The "hello world" of the toolkit: trains in about a minute on a laptop CPU.
#
#   bash recipes/yesno/run.sh                       # downloads waves_yesno.tar.gz (4.5 MB)
#   bash recipes/yesno/run.sh --corpus DIR          # a local waves_yesno folder (or its parent)
#   bash recipes/yesno/run.sh --smoke               # fake miniature corpus, tiny model
#
# Stages: 0 download + manifests (train/test halves, as lhotse/icefall) | 1 word LM from the
# training text | 2 train | 3 greedy and beam+LM decoding | 4 score, results table in RESULTS.md.
# yesno has no dev part: the test half also selects checkpoints (as icefall's yesno recipe does),
# so the LM weight is not tuned on it.
set -euo pipefail
recipe=yesno
here=$(cd "$(dirname "$0")" && pwd)
dev_name=test tune_lm=0 lm_order=2
source "$here/../common.sh"
parse_args "$@"

if stage 0 "corpus and manifests"; then
    if [ "$smoke" = 1 ]; then
        fake_corpus
    elif [ -z "$corpus" ]; then
        timed prepare download "$asr" prepare yesno --download --corpus "$data/download" --out "$data"
        corpus=$data/download/waves_yesno
    fi
    timed prepare manifests "$asr" prepare yesno --corpus "$corpus" --out "$data"
fi

model_stages "$exp" "$data/yesno_train.jsonl" "$data/yesno_test.jsonl"

if stage 4 "results table"; then
    mapfile -t reports < <(summaries "$exp" test)
    publish_results "yesno, $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$(model_config "$exp")" "${reports[@]}"
fi
