#!/usr/bin/env bash
# CMU AN4 recipe: corpus -> manifests -> BiLSTM-CTC training -> greedy decoding -> scoring.
#
#   bash recipes/an4/run.sh --corpus ../shared/data/an4 [--stage N] [--stop-stage M]
#
# Stages: 0 prepare manifests | 1 train (resumes a killed run) | 2 decode + score dev, and the
# official test part when the corpus folder has it (never used for tuning).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
corpus=""
stage=0
stop_stage=100
config="$here/conf/train.yaml"
exp="$here/exp"
data="$here/data"
device=auto
overrides=()

usage() { echo "usage: $0 --corpus DIR [--stage N] [--stop-stage M] [--config YAML] [--exp-dir DIR] [--data-dir DIR] [--device auto|cpu|cuda] [KEY=VALUE ...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --corpus) corpus=${2:?}; shift 2 ;;
        --stage) stage=${2:?}; shift 2 ;;
        --stop-stage) stop_stage=${2:?}; shift 2 ;;
        --config) config=${2:?}; shift 2 ;;
        --exp-dir) exp=${2:?}; shift 2 ;;
        --data-dir) data=${2:?}; shift 2 ;;
        --device) device=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *=*) overrides+=("$1"); shift ;;
        *) echo "run.sh: unknown option '$1'" >&2; usage ;;
    esac
done
[[ "$stage" =~ ^[0-9]+$ && "$stop_stage" =~ ^[0-9]+$ ]] || { echo "run.sh: --stage/--stop-stage must be integers" >&2; exit 2; }

if [ -x "$root/.venv/bin/asr" ]; then asr="$root/.venv/bin/asr"; else asr=asr; fi
command -v "$asr" >/dev/null || { echo "run.sh: 'asr' not found; run scripts/setup.sh first" >&2; exit 2; }
start=$(date +%s)
log() { echo "[an4 $(date +%H:%M:%S)] $*"; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    [ -n "$corpus" ] || { echo "run.sh: --corpus DIR is required for stage 0" >&2; exit 2; }
    [ -d "$corpus" ] || { echo "run.sh: corpus folder not found: $corpus" >&2; exit 2; }
    log "stage 0: manifests from $corpus"
    dev_args=()
    # The shared copy ships the project's fixed speaker-disjoint dev split; use it when present.
    if [ -f "$corpus/splits/dev_speakers.txt" ]; then
        read -r -a spk < <(tr "\n" " " < "$corpus/splits/dev_speakers.txt") || true
        dev_args=(--dev-speakers "${spk[@]}")
    fi
    "$asr" prepare an4 --corpus "$corpus" --out "$data" "${dev_args[@]}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    log "stage 1: training ($config) in $exp"
    resume=()
    [ -f "$exp/checkpoints/last.pt" ] && resume=(--resume) && log "resuming the run in $exp"
    if [ -f "$exp/model.pt" ]; then
        log "model exists: $exp/model.pt (remove it to retrain)"
    else
        "$asr" train --config "$config" --train "$data/an4_train.jsonl" --dev "$data/an4_dev.jsonl" \
            --exp-dir "$exp" --device "$device" "${resume[@]}" "${overrides[@]}"
    fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    sets=(dev)
    [ -f "$data/an4_test.jsonl" ] && sets+=(test)
    for s in "${sets[@]}"; do
        log "stage 2: greedy decoding + scoring of $s"
        "$asr" evaluate "$exp/model.pt" "$data/an4_$s.jsonl" --out "$exp/decode_$s"
        "$asr" score "$data/an4_$s.jsonl" "$exp/decode_$s/hyp.txt" --out-dir "$exp/decode_$s/report" > /dev/null
    done
fi
log "done in $(( $(date +%s) - start )) s"
