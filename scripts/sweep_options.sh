#!/usr/bin/env bash
# Every numeric option of every rlft command with adversarial values (-1, 0, nan, ±inf, 1e300,
# 1e-300, 0.5, 2, 1e8), one invocation each, classified by its outcome:
#   REFUSED   exit 2 and the error names the option (what bad input must get)
#   ACCEPTED  the settings passed: the error is the deliberately missing input ("nope")
#   RAN       exit 0 (train ppo|reinforce run at a tiny budget)
#   OTHER     some other error (read it)
#   CRASH_OR_TIMEOUT  a signal, or still running after 30 s (a budget of 1e8, say)
# Options that take names, paths or lists are left out. Read the ACCEPTED rows for values that
# should have been refused, and any CRASH row.
#
#   scripts/sweep_options.sh [RLFT_BINARY] > sweep.tsv      (about 10 minutes on 2 cores)
#   awk -F'\t' '$4 != "REFUSED"' sweep.tsv                  (what was not refused)
set -uo pipefail
R=$(realpath "${1:-build/rlft}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
D=$work/d
VALUES=(-1 0 nan inf -inf 1e300 1e-300 0.5 2 100000000)
declare -A BASE=(
  ["train ppo"]="--total-steps 256 --num-envs 1 --num-steps 64 --num-minibatches 1 --update-epochs 1 --runs-dir $D --name sw --quiet"
  ["train reinforce"]="--total-episodes 2 --runs-dir $D --name sw --quiet"
  ["eval"]="--run nope"
  ["lm pretrain"]="--task text --data nope --out-dir $D"
  ["lm sft"]="--task text --data nope --out-dir $D"
  ["lm sample"]="--run nope"
  ["lm eval"]="--run nope"
  ["lm prefs"]="--run nope --out $D/p.jsonl"
  ["lm rm"]="--prefs nope --init nope --out-dir $D"
  ["lm dpo"]="--prefs nope --init nope --out-dir $D"
  ["lm rrhf"]="--init nope --reward-model nope --out-dir $D"
  ["lm ppo"]="--init nope --reward-model nope --out-dir $D"
  ["experiment frontier"]="--sft nope --out-dir $D/f"
  ["experiment verifiable"]="--init nope --out-dir $D/v"
)
for m in grpo dr-grpo dapo gspo gspo-token dcpo rloo; do BASE["lm $m"]="--init nope --out-dir $D"; done
SKIP=" --help --resume --quiet --name --runs-dir --out-dir --out --data --run --init --prefs
  --reward-model --sft --prompt --preset --device --task --env --rl-args --methods --tokenizer
  --ops --model --show --split --loss --activation --scorer --lr-schedule --aggregation --kl
  --ratio-level --hidden --betas --kl-ctls "
SKIP=$(echo $SKIP)
for cmd in "${!BASE[@]}"; do
  for f in $("$R" $cmd --help 2>&1 | grep -oE '^  --[a-z0-9-]+'); do
    [[ " $SKIP " == *" $f "* ]] && continue
    base=$(echo " ${BASE[$cmd]} " | sed -E "s/ $f [^ ]+ / /")  # the option under test once
    name=${f#--}
    for v in "${VALUES[@]}"; do
      rm -rf "$D"
      err=$(cd "$work" && timeout 30 "$R" $cmd $base "$f" "$v" 2>&1 >/dev/null </dev/null)
      rc=$?
      if [ $rc -ge 124 ]; then cls=CRASH_OR_TIMEOUT
      elif [ $rc -eq 0 ]; then cls=RAN
      elif [[ "$err" == *"$f"* || "$err" == *"$name"* || "$err" == *"${name//-/_}"* ]]; then cls=REFUSED
      elif [[ "$err" == *nope* || "$err" == *"no directory"* ]]; then cls=ACCEPTED
      else cls=OTHER; fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$cmd" "$f" "$v" "$cls" "$rc" "$(echo "$err" | tail -1 | cut -c1-200)"
    done
  done
done
