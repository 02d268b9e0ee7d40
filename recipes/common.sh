# recipes/common.sh: the part every recipes/<corpus>/run.sh shares. Sourced, never run.
#
# A recipe sets `recipe` (its name) and `here` (its folder), optionally `recipe_opts` (its own
# options, `[--option]=variable`) and `score_opts` (extra `asr score` flags), then calls
# `parse_args "$@"`. Knobs a recipe may set first: lm_order (3), tune_lm (1), dev_name (dev),
# report_dev (1), default_models (1: models trained and combined without --models).
# After parse_args these are set:
#   corpus stage stop_stage config exp data device smoke overrides[] asr py root results_md
# and the helpers below run the stages:
#   stage N "what"            true when N is within --stage..--stop-stage (logs "stage N: what")
#   timed STAGE WHAT cmd...   run cmd, record its wall time in $exp/timing.tsv (STAGE: prepare,
#                             lm, train, decode or score; WHAT: a unique name, e.g. the set)
#   fake_corpus               --smoke: write the miniature corpus, set $corpus to it
#   model_stages DIR TRAIN DEV [NAME=MANIFEST ...]
#                             stages 1-4 for one model in DIR: 1 LM from TRAIN's text, 2 training
#                             (DEV selects checkpoints), 3 greedy and beam+LM decoding of DEV and
#                             of each NAME=MANIFEST, 4 scoring
#   summaries DIR [NAME...]   the score summary.json files of DIR's decoded sets
#   model_config DIR          DIR's resolved config.yaml (its first member's with --models N)
#   publish_results TITLE KEY [results_table options] SUMMARY.json...
#                             refresh the table KEY in $results_md (recipes/results_table.py)
#
# LM text: stage 1 normalises TRAIN's texts with the config's `text` settings, as `asr train`
# normalises the model's targets (`asr lm build --config`), into DIR/lm/text.txt and the LM.
# Tokens: `asr train` builds the tokenizer from the training text and stores it in model.pt, so
# stage 3 takes the token list from there to spell the LM's words into the decoding lexicon
# (`asr lm lang`: DIR/lang/tokens.txt, and lexicon.txt unless the model decodes lexicon-free);
# a list written before training could disagree with the model.
#
# Options every recipe takes:
#   --corpus DIR      the corpus as distributed (stage 0 downloads it when omitted, where possible)
#   --stage N --stop-stage M   run stages N..M (default all)
#   --config YAML     training config (default conf/train.yaml; conf/smoke.yaml with --smoke)
#   --exp-dir DIR     output folder (default exp/<config name>)
#   --data-dir DIR    manifests (default data/; <exp-dir>/data with --smoke)
#   --device D        auto, cpu or cuda[:N] (default auto)
#   --no-lm           skip the LM and beam search (greedy decoding only)
#   --results-md FILE where stage 4 writes its table (default: the recipe's RESULTS.md;
#                     <exp-dir>/RESULTS.md with --smoke)
#   --smoke           fake miniature corpus + conf/smoke.yaml: checks the recipe end to end
#   --models N        train N models (the config's seed, then seed+1, ...) in <exp>/seed<k> and
#                     decode them as one (asr combine: posterior averaging) from <exp>/model.yaml
#   KEY=VALUE         config overrides for `asr train`, e.g. train.epochs=5

declare -A recipe_opts 2>/dev/null || true
declare -p score_opts >/dev/null 2>&1 || score_opts=()
lm_order=${lm_order:-3}   # n-gram order of the LM
tune_lm=${tune_lm:-1}     # 1: tune LM weight / word score / silence score on the dev set
dev_name=${dev_name:-dev} # name of the model-selection set in decode_<name>_* folders
report_dev=${report_dev:-1} # 0: decode dev only to tune the LM weight, neither greedy nor scored

_usage() {
    local extra=""
    for o in "${!recipe_opts[@]}"; do extra+=" [$o ${recipe_opts[$o]^^}]"; done
    echo "usage: $0 [--corpus DIR] [--stage N] [--stop-stage M] [--config YAML] [--exp-dir DIR]" \
         "[--data-dir DIR] [--device auto|cpu|cuda] [--no-lm] [--results-md FILE] [--smoke] [--models N]$extra" \
         "[KEY=VALUE ...]" >&2
    exit 2
}

log() { echo "[$recipe $(date +%H:%M:%S)] $*"; }
die() { echo "$recipe/run.sh: $*" >&2; exit 2; }

parse_args() {
    root=$(cd "$here/../.." && pwd)
    run_command="bash recipes/$recipe/run.sh"
    [ $# -eq 0 ] || run_command+=$(printf ' %q' "$@")
    corpus="" stage=0 stop_stage=100 config="" exp="" data="" device=auto smoke=0 use_lm=1 models=""
    results_md=""
    overrides=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --corpus) corpus=${2:?}; shift 2 ;;
            --stage) stage=${2:?}; shift 2 ;;
            --stop-stage) stop_stage=${2:?}; shift 2 ;;
            --config) config=${2:?}; shift 2 ;;
            --exp-dir) exp=${2:?}; shift 2 ;;
            --data-dir) data=${2:?}; shift 2 ;;
            --device) device=${2:?}; shift 2 ;;
            --no-lm) use_lm=0; shift ;;
            --results-md) results_md=${2:?}; shift 2 ;;
            --smoke) smoke=1; shift ;;
            --models) models=${2:?}; shift 2 ;;
            -h|--help) _usage ;;
            --*)
                [ -n "${recipe_opts[$1]+x}" ] || { echo "run.sh: unknown option '$1'" >&2; _usage; }
                printf -v "${recipe_opts[$1]}" '%s' "${2?$1 needs a value}"; shift 2 ;;
            *=*) overrides+=("$1"); shift ;;
            *) echo "run.sh: unknown argument '$1'" >&2; _usage ;;
        esac
    done
    [[ "$stage" =~ ^[0-9]+$ && "$stop_stage" =~ ^[0-9]+$ ]] || die "--stage/--stop-stage must be integers"
    # a recipe's default_models (its measured default) applies to real runs; --smoke trains one
    [ -n "$models" ] || { [ "$smoke" = 1 ] && models=1 || models=${default_models:-1}; }
    [[ "$models" =~ ^[1-9][0-9]*$ ]] || die "--models must be a positive integer, got '$models'"
    if [ "$smoke" = 1 ]; then config=${config:-$here/conf/smoke.yaml}; else config=${config:-$here/conf/train.yaml}; fi
    [ -f "$config" ] || die "config not found: $config"
    exp=${exp:-$here/exp/$(basename "$config" .yaml)}
    mkdir -p "$exp"
    exp=$(cd "$exp" && pwd)
    if [ "$smoke" = 1 ]; then data=${data:-$exp/data}; results_md=${results_md:-$exp/RESULTS.md}
    else data=${data:-$here/data}; results_md=${results_md:-$here/RESULTS.md}; fi
    mkdir -p "$data"
    data=$(cd "$data" && pwd)
    if [ -x "$root/.venv/bin/asr" ]; then asr=$root/.venv/bin/asr py=$root/.venv/bin/python
    else asr=asr py=python3; fi
    command -v "$asr" >/dev/null || die "'asr' not found; run scripts/setup.sh first"
    eval_device=$device
    if [ "$device" = auto ]; then
        eval_device=cpu
        nvidia-smi -L >/dev/null 2>&1 && eval_device=cuda
    fi
    if [ "$use_lm" = 1 ] && ! "$asr" evaluate --help 2>/dev/null | grep -q -- --decoder; then
        log "this asr has no beam search in 'asr evaluate': greedy decoding only"
        use_lm=0
    fi
    if [ "$smoke" = 1 ]; then tune_grid=(--lm-weights 0,1 --word-scores 0 --sil-scores 0); else tune_grid=(); fi
    log "config $config, exp $exp, data $data"
}

stage() {
    if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
        log "stage $1: ${2:-}"
        return 0
    fi
    return 1
}

timed() {
    local what=$1 key=$2 t0=$SECONDS
    shift 2
    "$@"
    printf '%s\t%s\t%s\n' "$what" "$((SECONDS - t0))" "$key" >> "$exp/timing.tsv"
}

fake_corpus() {
    corpus=$("$py" -m data_prep.fake "$recipe" "$exp/fake_corpus" "$@")
    log "smoke test: fake corpus in $corpus"
}

# train_model DIR TRAIN DEV [KEY=VALUE...] : `asr train`, resuming DIR's run when it was
# interrupted; a finished run (DIR/model.pt) is kept. Extra overrides come after the user's.
train_model() {
    local dir=$1 train=$2 dev=$3 resume=()
    shift 3
    if [ -f "$dir/model.pt" ]; then
        log "model exists: $dir/model.pt (remove it to retrain)"
        return 0
    fi
    [ -f "$dir/checkpoints/last.pt" ] && resume=(--resume) && log "resuming the run in $dir"
    "$asr" train --config "$config" --train "$train" --dev "$dev" --exp-dir "$dir" \
        --device "$device" "${resume[@]}" "${overrides[@]}" "$@"
}

# base_seed : train.seed as the overrides (last one wins) or else the config set it
base_seed() {
    local o seed=""
    for o in "${overrides[@]}"; do [[ "$o" == train.seed=* ]] && seed=${o#train.seed=}; done
    [ -n "$seed" ] || seed=$("$py" -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])) or {}
print((c.get("train") or {}).get("seed", 1234))' "$config")
    echo "$seed"
}

# train_models DIR TRAIN DEV : one model in DIR (DIR/model.pt), or with --models N, N models in
# DIR/seed1..N (seeds base, base+1, ...) and their combination file DIR/model.yaml
train_models() {
    local dir=$1 train=$2 dev=$3 k base members=()
    if [ "$models" = 1 ]; then
        train_model "$dir" "$train" "$dev"
        return
    fi
    base=$(base_seed)
    for k in $(seq 1 "$models"); do
        log "model $k of $models: train.seed=$((base + k - 1)) in $dir/seed$k"
        train_model "$dir/seed$k" "$train" "$dev" "train.seed=$((base + k - 1))"
        members+=("$dir/seed$k/model.pt")
    done
    "$asr" combine "${members[@]}" -o "$dir/model.yaml"
}

# score_dir MANIFEST DIR : `asr score` of DIR/hyp.txt -> DIR/report/{report.md,summary.json}
score_dir() {
    "$asr" score "$1" "$2/hyp.txt" --out-dir "$2/report" "${score_opts[@]}"
}

# model_stages DIR TRAIN DEV [NAME=MANIFEST ...] : stages 1-4 for the model in DIR. DEV picks
# the checkpoints to average and (unless tune_lm=0) the LM weight, word and silence scores of
# the beam search; the other sets are only decoded and scored. Sets decode into
# DIR/decode_<name>_{greedy,beam}.
model_stages() {
    local dir=$1 train=$2 dev=$3
    shift 3
    local sets=("$dev_name=$dev" "$@") lm=$dir/lm/${lm_order}gram.arpa tag=""
    [ "$dir" = "$exp" ] || tag="$(basename "$dir") "
    mkdir -p "$dir"
    if [ "$use_lm" = 1 ] && stage 1 "LM (order $lm_order) from the training text only"; then
        # the training texts as the config normalises the model's targets -> lm/text.txt and the LM
        timed lm "${tag}lm" "$asr" lm build "$train" -o "$lm" --order "$lm_order" \
            --config "$config" --text-out "$dir/lm/text.txt" --override "${overrides[@]}"
    fi
    local model=$dir/model.pt
    [ "$models" = 1 ] || model=$dir/model.yaml
    if stage 2 "training in $dir"; then
        timed train "${tag}train" train_models "$dir" "$train" "$dev"
    fi
    if stage 3 "decoding: greedy$([ "$use_lm" = 1 ] && echo ", beam search + LM")"; then
        local s name manifest
        for s in "${sets[@]}"; do
            name=${s%%=*} manifest=${s#*=}
            [ "$name" = "$dev_name" ] && [ "$report_dev" = 0 ] && continue
            timed decode "${tag}$name greedy" "$asr" evaluate "$model" "$manifest" \
                --decoder greedy --out "$dir/decode_${name}_greedy" --device "$eval_device"
        done
        if [ "$use_lm" = 1 ]; then
            [ -f "$lm" ] || die "no LM at $lm: run stage 1 first (or pass --no-lm)"
            "$asr" lm lang "$model" "$dir/lm/text.txt" --out "$dir/lang"
            local lex=()
            [ -f "$dir/lang/lexicon.txt" ] && lex=(--lexicon "$dir/lang/lexicon.txt")
            rm -f "$dir/decode.yaml"
            for s in "${sets[@]}"; do
                name=${s%%=*} manifest=${s#*=}
                local tune=()
                # The LM weight, word and silence scores are tuned on dev only (tune_lm=0 when dev is the
                # reported test set); the decode.yaml that --tune writes serves the later sets.
                if [ "$name" = "$dev_name" ]; then
                    if [ "$tune_lm" = 1 ]; then tune=(--tune "${tune_grid[@]}");
                    elif [ "$report_dev" = 0 ]; then continue; fi
                fi
                timed decode "${tag}$name beam" "$asr" evaluate "$model" "$manifest" \
                    --decoder beam --lm "$lm" "${lex[@]}" "${tune[@]}" \
                    --out "$dir/decode_${name}_beam" --device "$eval_device"
            done
        fi
    fi
    if stage 4 "scoring"; then
        local s name manifest d
        for s in "${sets[@]}"; do
            name=${s%%=*} manifest=${s#*=}
            [ "$name" = "$dev_name" ] && [ "$report_dev" = 0 ] && continue
            for d in greedy beam; do
                if [ -f "$dir/decode_${name}_$d/hyp.txt" ]; then
                    timed score "${tag}$name $d" score_dir "$manifest" "$dir/decode_${name}_$d"
                fi
            done
        done
    fi
}

# model_config DIR : the resolved config.yaml of DIR's model (of its first member with --models)
model_config() {
    if [ -f "$1/config.yaml" ] || [ "$models" = 1 ]; then echo "$1/config.yaml"; else echo "$1/seed1/config.yaml"; fi
}

# summaries DIR [NAME...] : the summary.json files of DIR's scored sets (all when no NAME)
summaries() {
    local dir=$1 name d
    shift
    if [ $# -eq 0 ]; then
        ls "$dir"/decode_*/report/summary.json 2>/dev/null || true
        return
    fi
    for name in "$@"; do
        for d in greedy beam; do
            if [ -f "$dir/decode_${name}_$d/report/summary.json" ]; then
                echo "$dir/decode_${name}_$d/report/summary.json"
            fi
        done
    done
    return 0
}

# publish_results TITLE KEY [results_table options] SUMMARY.json... : refresh the block KEY of
# $results_md (RESULTS.md, or $exp/RESULTS.md for --smoke) with a table of these summaries
publish_results() {
    local title=$1 key=$2
    shift 2
    "$py" "$root/recipes/results_table.py" "$@" --title "$title" --command "$run_command" \
        --timing "$exp/timing.tsv" --update "$results_md" --key "$key"
}
