#!/usr/bin/env bash
# Benchmark: `asr train` of this checkout against an earlier commit's, side by side on the same
# machine, config and manifests: each trains the same number of epochs (per-epoch dev scoring
# included, as in the recipe), in turn, --rounds times, and the script prints each run's epoch
# seconds (from its own log) and the ratio of the medians. The earlier commit runs from a
# temporary git worktree with this checkout's .venv.
#
#   bash bench/train_vs.sh --rev 7f0dd29 --data DATA [--config FILE] [--epochs 4] [--rounds 2]
#        [--out DIR] [KEY=VALUE ...]
#
#   DATA: a folder with an4_train.jsonl and an4_dev.jsonl. --config: default the earlier commit's
#   recipes/an4/conf/train.yaml (the config both can read). Epoch 1 is left out of the median (warm-up).
#   Nothing else should run on the machine meanwhile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
rev="" data="" config="" epochs=4 rounds=2 out="" overrides=()
die() { echo "train_vs.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rev) rev=${2:?}; shift 2 ;;
        --data) data=${2:?}; shift 2 ;;
        --config) config=${2:?}; shift 2 ;;
        --epochs) epochs=${2:?}; shift 2 ;;
        --rounds) rounds=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --*) die "unknown option $1 (see the header of bench/train_vs.sh)" ;;
        *) overrides+=("$1"); shift ;;
    esac
done
[ -n "$rev" ] || die "--rev REV is required"
git -C "$root" rev-parse --verify -q "$rev^{commit}" > /dev/null || die "no commit $rev in $root"
[ -f "$data/an4_train.jsonl" ] && [ -f "$data/an4_dev.jsonl" ] || die "no manifests in '$data' (--data)"
[ "$epochs" -ge 2 ] || die "--epochs must be at least 2 (epoch 1 is the warm-up)"
out=${out:-$(mktemp -d)}
mkdir -p "$out"
out=$(cd "$out" && pwd) data=$(cd "$data" && pwd)  # each training runs from its own checkout
echo "train_vs.sh: logs in $out" >&2
old=$out/worktree
git -C "$root" worktree remove --force "$old" 2> /dev/null || rm -rf "$old"  # never a stale one
git -C "$root" worktree prune
git -C "$root" worktree add -q --detach "$old" "$rev"
trap 'git -C "$root" worktree remove --force "$old" 2> /dev/null || true' EXIT
config_name=${config:-"$rev:recipes/an4/conf/train.yaml"}
config=${config:-$old/recipes/an4/conf/train.yaml}
[ -f "$config" ] || die "config not found: $config"
config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
new_rev=$(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- asr || echo "+changes")

# run NAME CODE_DIR ROUND: one training, its epoch seconds into $out/NAME.secs
run() {
    local name=$1 code=$2 r=$3 exp=$out/exp_$1_$3
    rm -rf "$exp"
    (cd "$code" && PYTHONPATH=$code "$py" -m asr.cli train --config "$config" \
        --train "$data/an4_train.jsonl" --dev "$data/an4_dev.jsonl" --exp-dir "$exp" \
        --device cpu "train.epochs=$epochs" "${overrides[@]}") > "$out/$name.$r.log" 2>&1 \
        || die "$name training failed: $(tail -1 "$out/$name.$r.log")"
    # "epoch N: loss ... (S s)": the epoch's seconds, training and dev scoring
    sed -n 's/.* epoch \([0-9]*\): .*(\([0-9.]*\) s)$/\1 \2/p' "$out/$name.$r.log" \
        | awk '$1 > 1 {print $2}' >> "$out/$name.secs"
}
rm -f "$out"/*.secs
for r in $(seq "$rounds"); do  # the order alternates, so neither code always runs first
    if [ $((r % 2)) = 1 ]; then run old "$old" "$r"; run new "$root" "$r"
    else run new "$root" "$r"; run old "$old" "$r"; fi
done
for name in old new; do
    [ -s "$out/$name.secs" ] || die "no epoch times in the $name runs' logs ($out/$name.*.log)"
done
median() { sort -n "$1" | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
m_old=$(median "$out/old.secs") m_new=$(median "$out/new.secs")
echo "# asr train side by side: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), nproc $(nproc), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "config $config_name, overrides: ${overrides[*]:-none}; $epochs epochs x $rounds rounds each, epoch 1 left out"
echo "| code | epoch seconds (each) | median |"
echo "|---|---|---|"
echo "| $rev | $(tr '\n' ' ' < "$out/old.secs") | $m_old |"
echo "| $new_rev | $(tr '\n' ' ' < "$out/new.secs") | $m_new |"
echo "speed-up (median epoch time $rev / $new_rev): $(awk -v a="$m_old" -v b="$m_new" 'BEGIN {printf "%.2fx", a / b}')"
