#!/usr/bin/env bash
# The benchmark suite in one command: each bench/ script (and the long-form one) run in turn,
# each with its own time limit, on a trained AN4 recipe folder. Writes one markdown file of
# tables, each headed by its command, machine, commit and date, and every script's JSON beside
# it. docs/benchmarks.md quotes the tables (with the run they come from).
#
#   bash bench/run_all.sh --exp EXP --data DATA [--stream-model M.pt] [--out DIR]
#        [--only train,recurrence,features,inference,decode,stream,longform] [--minutes "1 10 60"]
#
#   EXP: a recipe experiment folder (EXP/model.pt, EXP/decode.yaml; a character model for the
#   decoding benchmark); DATA: its manifests (an4_train.jsonl, an4_dev.jsonl).
#   Nothing else should run on the machine meanwhile (two cores: any other job halves a figure).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
exp="" data="" stream_model="" out="" only="train,recurrence,features,inference,decode,stream,longform"
minutes="1 10 60"
die() { echo "run_all.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --exp) exp=${2:?}; shift 2 ;;
        --data) data=${2:?}; shift 2 ;;
        --stream-model) stream_model=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --only) only=${2:?}; shift 2 ;;
        --minutes) minutes=${2:?}; shift 2 ;;
        *) die "unknown option $1 (see the header of bench/run_all.sh)" ;;
    esac
done
[ -f "$exp/model.pt" ] || die "no model at $exp/model.pt (--exp: a trained recipe folder)"
[ -f "$data/an4_dev.jsonl" ] || die "no manifests at $data (--data: the recipe's data folder)"
out=${out:-$exp/bench}
mkdir -p "$out"
md=$out/benchmarks.md
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc)"
echo "# Benchmark suite: commit $commit, $machine, $(date -u '+%Y-%m-%d %H:%M UTC')" > "$md.part"

# bench NAME LIMIT_S CMD... : run one benchmark, append its command and tables to the markdown
bench() {
    local name=$1 limit=$2; shift 2
    [[ ",$only," == *",$name,"* ]] || return 0
    echo "[run_all] $name: $*" >&2
    {
        echo; echo "## $name"; echo
        echo "\`$*\` (commit $commit, $machine, $(date -u '+%Y-%m-%d %H:%M UTC'))"; echo
    } >> "$md.part"
    local t0=$SECONDS rc=0
    timeout "$limit" "$@" > "$out/$name.txt" 2> "$out/$name.err" || rc=$?
    # a script's "# title" line becomes italic text; a table gets the blank line before it
    awk '/^[[:space:]]*$/ {next} /^# / {sub(/^# /, ""); $0 = "_" $0 "_"}
         (/^\|/) != t {print ""} {t = /^\|/; print}' "$out/$name.txt" >> "$md.part" || true
    if [ "$rc" != 0 ]; then
        echo "**failed (exit $rc after $((SECONDS - t0)) s)**: $(tail -1 "$out/$name.err")" >> "$md.part"
    fi
    echo "[run_all] $name: exit $rc, $((SECONDS - t0)) s" >&2
}

cd "$root"
bench train 900 "$py" bench/train.py --train "$data/an4_train.jsonl" --dev "$data/an4_dev.jsonl" \
    --max-steps 40 --json "$out/train.json"
bench recurrence 600 "$py" bench/recurrence.py --json "$out/recurrence.json"
bench features 600 "$py" bench/features.py "$data/an4_dev.jsonl" --json "$out/features.json"
bench inference 1200 "$py" bench/inference.py "$exp/model.pt" "$data/an4_dev.jsonl" \
    --json "$out/inference.json"
bench decode 900 "$py" bench/decode.py "$exp/model.pt" "$data/an4_dev.jsonl" \
    --json "$out/decode.json"
if [ -n "$stream_model" ]; then
    bench stream 1800 "$py" bench/stream.py "$stream_model" "$data/an4_dev.jsonl" --threads 1 \
        --memory-minutes 120 --endpoint energy --endpoint-ms 500 --json "$out/stream.json"
fi
for m in $minutes; do
    bench longform 1800 "$py" scripts/bench_longform.py "$exp/model.pt" "$data/an4_dev.jsonl" \
        --minutes "$m" --out "$out/longform_$m"
done
mv "$md.part" "$md"
echo "[run_all] tables in $md" >&2
