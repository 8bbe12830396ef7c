#!/usr/bin/env bash
# The nightly regression job (.github/workflows/nightly.yml runs it; README, "Nightly GPU CI"):
# run the suites, rerun at once the rows that moved on this night alone, judge every row over the
# history of this GPU model and environment, add the night to it, build the report.
#
#   scripts/nightly.sh [--cpu] [--out DIR] [--history DIR] [--summary FILE] [--address ADDR]
#                      [--commit SHA] [--plugin MODULE] [--accept]
#
# --cpu: the same steps on this machine's CPU with the smoke suite (eager, in this process), in
# seconds. --commit: the commit the night tested (default: the records' git commit). --plugin:
# activation plugins to load (repeatable). --accept: this night's steps are intended.
# Exit 1 on a confirmed regression or failed trials, 2 on bad input, 0 otherwise (suspects and
# machine events are reported in the summary).
set -uo pipefail

out=results/nightly history=results/history summary="" address="" commit="" cpu=0 accept=()
plugins=()
while (($#)); do
  case $1 in
    --cpu) cpu=1 ;;
    --accept) accept=(--accept) ;;
    --out|--history|--summary|--address|--commit|--plugin)
      (($# >= 2)) && [[ -n $2 ]] || { echo "nightly.sh: $1 needs a value (not empty)" >&2; exit 2; }
      case $1 in
        --out) out=$2 ;; --history) history=$2 ;; --summary) summary=$2 ;;
        --address) address=$2 ;; --commit) commit=$2 ;; --plugin) plugins+=(--plugin "$2") ;;
      esac
      shift ;;
    *) echo "nightly.sh: unknown argument $1 (see the comment at its top)" >&2; exit 2 ;;
  esac
  shift
done

if ((cpu)); then
  suites=(smoke)
  run_args=(--executor inline --set 'impls=[eager]')
else
  suites=(kernels memory llm_small)
  run_args=(${address:+--address "$address"})
fi
[[ $out == -* ]] && out=./$out  # a folder named like an option is still a folder to actbench
rerun_dir="${out%/}-rerun"
common=(--history "$history" ${commit:+--commit "$commit"})

run() {  # run SUITE OUT [ARGS...]: one suite; 1 when trials failed (regress reports them), 2 on bad input
  local suite=$1 dest=$2
  shift 2
  actbench "${plugins[@]}" run "suites/$suite.yaml" --out "$dest" --rerun "${run_args[@]}" "$@"
  local rc=$?
  ((rc == 2)) && { echo "nightly.sh: actbench run suites/$suite.yaml: bad input" >&2; exit 2; }
  return 0
}

for s in "${suites[@]}"; do
  run "$s" "$out/$s"
done

# The rows that moved on this night alone: run just their trials again, now, on this machine,
# 64 trial ids a run (the most words -k takes).
rm -rf -- "$rerun_dir" && mkdir -p -- "$rerun_dir"
actbench regress "$out" "${common[@]}" --suspects "$rerun_dir/suspects.txt" || exit 2
rerun=()
for s in "${suites[@]}"; do
  while IFS= read -r ids; do
    run "$s" "$rerun_dir/$s" -k "$ids"
    rerun=(--rerun "$rerun_dir")
  done < <(awk -v s="$s" '$1 == s { printf "%s%s", (n % 64 ? " or " : n ? "\n" : ""), $2; n++ } END { if (n) print "" }' "$rerun_dir/suspects.txt")
done

actbench regress "$out" "${common[@]}" "${rerun[@]}" "${accept[@]}" --plot "$out/history.png" ${summary:+--summary "$summary"}
rc=$?
actbench report "$out" --out "$out/report" >/dev/null || echo "nightly.sh: the report was not built" >&2
exit "$rc"
