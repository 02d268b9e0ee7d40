#!/usr/bin/env bash
# Free Spoken Digit Dataset (FSDD): speaker-independent leave-one-speaker-out (LOSO) recognition
# of isolated English digits, 8 kHz. One model per fold: trained on 5 speakers, tested on all 500
# recordings of the 6th. A CPU recipe: the 6 folds took 14 minutes on 2 cores (RESULTS.md).
#
#   bash recipes/fsdd/run.sh --corpus ../shared/data/fsdd     # a local copy (holds recordings/)
#   bash recipes/fsdd/run.sh                                  # downloads the v1.0.10 archive
#   bash recipes/fsdd/run.sh --corpus DIR --folds "theo jackson"   # some folds only
#   bash recipes/fsdd/run.sh --smoke                          # fake 2-speaker corpus, tiny model
#
# Stages: 0 manifests (`asr prepare fsdd --split loso --with-dev`): every LOSO fold; takes 0-4 of
# the 5 training speakers become the fold's dev set (checkpoint averaging, LM weight), takes 5-49
# its training set; the held-out speaker is never seen before testing | 1 word LM from the fold's
# training text | 2 train each fold | 3 greedy and beam+LM decoding (word tokens: lexicon-free,
# the LM over the ten digit words) of each held-out speaker |
# 4 score, and one table in RESULTS.md: WER per held-out speaker and their mean.
set -euo pipefail
recipe=fsdd
here=$(cd "$(dirname "$0")" && pwd)
declare -A recipe_opts=([--folds]=folds)
folds=""
lm_order=2 report_dev=0
source "$here/../common.sh"
parse_args "$@"

if stage 0 "corpus and leave-one-speaker-out manifests"; then
    if [ "$smoke" = 1 ]; then
        fake_corpus
    elif [ -z "$corpus" ]; then
        timed prepare download "$asr" prepare fsdd --download --corpus "$data/download" --out "$data" \
            --split loso --with-dev
        corpus=$(ls -d "$data"/download/free-spoken-digit-dataset-*)
    fi
    # per fold: _test (the held-out speaker), _dev (takes 0-4 of the others), _train5 (takes 5-49)
    timed prepare manifests "$asr" prepare fsdd --corpus "$corpus" --out "$data" --split loso --with-dev
fi

if [ -z "$folds" ]; then
    folds=$(for f in "$data"/fsdd_loso_*_test.jsonl; do f=${f##*/fsdd_loso_}; echo "${f%_test.jsonl}"; done)
fi
[ -n "$folds" ] || die "no fold manifests in $data: run stage 0"
for spk in $folds; do
    m=$data/fsdd_loso_$spk
    [ -f "${m}_test.jsonl" ] || die "no fold for speaker '$spk' in $data"
    log "fold: held-out speaker $spk"
    model_stages "$exp/fold_$spk" "${m}_train5.jsonl" "${m}_dev.jsonl" "$spk=${m}_test.jsonl"
done

if stage 4 "results table: WER per held-out speaker, mean over folds"; then
    reports=() labels=()
    for spk in $folds; do
        for d in greedy beam; do
            r=$exp/fold_$spk/decode_${spk}_$d/report/summary.json
            [ -f "$r" ] && reports+=("$r") && labels+=("$spk")
        done
    done
    [ ${#reports[@]} -gt 0 ] || die "no scored folds in $exp"
    publish_results "FSDD leave-one-speaker-out, $(basename "$config")" "$(basename "$config" .yaml)" \
        --config "$exp/fold_${folds%%[[:space:]]*}/config.yaml" --mean \
        --labels "$(IFS=,; echo "${labels[*]}")" \
        --note "Each row: a model trained on the other 5 speakers (takes 5-49), tested on all takes of this speaker." \
        "${reports[@]}"
fi
