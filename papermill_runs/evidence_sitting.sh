#!/bin/bash
# The evidence batches (issue 19) take longer than one working session, and a
# session's machine may be replaced by a fresh clone of main before the next
# one: a worktree, its finished runs and the model cache would then be lost.
# So each sitting starts from, and ends by committing to, main:
#
#   papermill_runs/evidence_sitting.sh begin [COMMIT]   # worktree at the evidence commit, staged runs restored, queue started
#   papermill_runs/evidence_sitting.sh land             # finished runs and training records -> main, committed
#   papermill_runs/evidence_sitting.sh status           # the queue, each batch's staged and finished runs, the run in progress
#   papermill_runs/evidence_sitting.sh reproduce        # one run of each verdict batch retrained from nothing, compared
#   papermill_runs/evidence_sitting.sh finish           # every run staged: they replace the batches' runs; aggregated,
#                                                       # the tables generated from them rewritten, chapter 05 re-executed
#
# The staging folder papermill_runs/evidence-in-progress/ holds, on main:
#   COMMIT                     the one commit every evidence run is made at (written by the first begin)
#   <batch>/runs/<run-id>/     each finished run, as the worktree wrote it
#   <batch>/definition.json    the batch's record of its definition (the runner writes it)
#   <batch>/reproduced/        reproduction reports (python -m calibkd.runs.reproduce in the worktree)
#   model-records/<key>.json   the model cache's training records (seconds per model; no weights), for
#                              `python -m calibkd.runs compute` once the cache that trained them is gone
#   queue.log                  every sitting's start and end lines (run_evidence.sh)
#   tempering-audit-glyphs.json the old tempering audited on the glyph teachers (run_evidence.sh; -> bench/results/)
# The staged runs are not a batch (no batch.yaml): claims and chapter 05 do not read them. When the
# queue has finished, the staged runs replace the batches' old runs (docs/batches.md, "Evidence at one commit").
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)   # this script's folder: evidence_env.sh lies beside it
MAIN=$(cd "$(dirname "$0")/.." && pwd)   # also from the copy `begin` runs, in the checkout's .cache/
WORKTREE=${WORKTREE:-$MAIN/../evidence}
STAGE=$MAIN/papermill_runs/evidence-in-progress
LOGS=${LOGS:-$MAIN/../evidence-logs}
# What `reproduce` retrains (batch:seed:method:regime): CUD, the method under test, in the regime each
# batch's claims rest on; `begin` queues it after the batches (issue 19: "state which you reran").
REPRODUCE=${EVIDENCE_REPRODUCE-"reference-fmnist:0:cud:overconfident long-tail-fmnist:0:cud:long_tail glyphs-central:0:cud:overconfident"}
BATCHES=${EVIDENCE_BATCHES:-"tuning-fmnist reference-fmnist long-tail-fmnist tuning-glyphs glyphs-diagnosis glyphs-central"}

queue_running() {
  # this worktree's queue only (another checkout's queue, or a test's, may run on the same machine)
  pgrep -f "run_evidence.sh $WORKTREE" > /dev/null || pgrep -f "evidence_sitting.sh reproduce $WORKTREE" > /dev/null
}

begin() {
  mkdir -p "$STAGE" "$LOGS"
  if [ ! -f "$STAGE/COMMIT" ]; then
    git -C "$MAIN" rev-parse --verify "${1:?the first sitting names the evidence commit}^{commit}" > "$STAGE/COMMIT"
  fi
  local commit; commit=$(cat "$STAGE/COMMIT")
  if [ ! -d "$WORKTREE" ]; then
    git -C "$MAIN" worktree add -q --detach "$WORKTREE" "$commit"
    # the batches' old runs were made by other code: the evidence replaces them, it is not pooled with them
    for b in $BATCHES; do
      find "$WORKTREE/papermill_runs/$b" -mindepth 1 -maxdepth 1 ! -name batch.yaml -exec rm -rf {} +
    done
  fi
  test "$(git -C "$WORKTREE" rev-parse HEAD)" = "$commit" || { echo "$WORKTREE is not at $commit"; exit 2; }
  for run in "$STAGE"/*/runs/*/; do
    [ -d "$run" ] || continue
    b=$(basename "$(dirname "$(dirname "$run")")")
    dest="$WORKTREE/papermill_runs/$b/runs/$(basename "$run")"
    [ -e "$dest" ] || { mkdir -p "$(dirname "$dest")"; cp -a "$run" "$dest"; echo "restored $b/$(basename "$run")"; }
  done
  for report in "$STAGE"/*/reproduced/*.json; do
    [ -f "$report" ] || continue
    dest="$WORKTREE/papermill_runs/$(basename "$(dirname "$(dirname "$report")")")/reproduced"
    mkdir -p "$dest"; cp -n "$report" "$dest/"
  done
  [ -f "$STAGE/queue.log" ] && [ ! -s "$LOGS/queue.log" ] && cp "$STAGE/queue.log" "$LOGS/queue.log"
  if queue_running; then echo "the queue is already running"; return; fi
  # a fresh clone: the environment and the dataset first (the glyph fonts come in the queue)
  [ -x "$MAIN/.venv/bin/python" ] || make -C "$MAIN" setup data
  # the queue and this script are run from copies, so that main's copies can change while they run; the
  # copies lie one level below the checkout (in its ignored .cache/), where run_evidence.sh finds the checkout
  mkdir -p "$MAIN/.cache"
  cp "$MAIN/papermill_runs/run_evidence.sh" "$MAIN/.cache/run_evidence.sh"
  cp "$MAIN/papermill_runs/evidence_sitting.sh" "$MAIN/.cache/evidence_sitting.sh"
  cp "$MAIN/papermill_runs/evidence_env.sh" "$MAIN/.cache/evidence_env.sh"
  echo "$(date -Is) sitting begins on $(hostname) at $commit" >> "$LOGS/queue.log"
  LOGS=$LOGS setsid nohup nice -n 5 \
    bash -c 'bash "$0/run_evidence.sh" "$1" && bash "$0/evidence_sitting.sh" reproduce "$1"' "$MAIN/.cache" "$WORKTREE" \
    >> "$LOGS/queue.log" 2>&1 < /dev/null &
  echo "queue started; progress: tail $LOGS/queue.log, python -m calibkd.runs status $WORKTREE/papermill_runs/<batch>"
}

land() {
  test -f "$STAGE/COMMIT" || { echo "no evidence sitting has begun (no $STAGE/COMMIT)"; exit 2; }
  local landed=0
  for b in $BATCHES; do
    for run in "$WORKTREE/papermill_runs/$b/runs"/*/; do
      [ -f "$run/run.json" ] && grep -q '"status": *"finished"' "$run/run.json" || continue
      dest="$STAGE/$b/runs/$(basename "$run")"
      [ -e "$dest" ] && continue
      mkdir -p "$(dirname "$dest")"; cp -a "$run" "$dest.partial"; mv "$dest.partial" "$dest"
      echo "landed $b/$(basename "$run")"; landed=$((landed + 1))
    done
    # reproduction reports (python -m calibkd.runs.reproduce, run in the worktree)
    for report in "$WORKTREE/papermill_runs/$b/reproduced"/*.json; do
      [ -f "$report" ] || continue
      mkdir -p "$STAGE/$b/reproduced"; cp "$report" "$STAGE/$b/reproduced/"
    done
    # the batch's record of its definition (the runner writes it; the finished batch keeps it)
    [ -d "$STAGE/$b" ] && [ -f "$WORKTREE/papermill_runs/$b/definition.json" ] \
      && cp "$WORKTREE/papermill_runs/$b/definition.json" "$STAGE/$b/definition.json"
  done
  mkdir -p "$STAGE/model-records"
  cache=${CALIBKD_CACHE:-$MAIN/.cache/models}
  [ -d "$cache" ] && find "$cache" -maxdepth 1 -name '*.json' -exec cp -n {} "$STAGE/model-records/" \;
  [ -f "$LOGS/queue.log" ] && cp "$LOGS/queue.log" "$STAGE/queue.log"
  # the tempering audit of the glyph teachers (run_evidence.sh, after the glyph batches)
  [ -f "$LOGS/tempering-audit-glyphs.json" ] && cp "$LOGS/tempering-audit-glyphs.json" "$STAGE/"
  git -C "$MAIN" add "$STAGE"
  git -C "$MAIN" commit -q -m "Evidence in progress: $landed more finished run(s) staged from the worktree at $(cut -c1-7 "$STAGE/COMMIT"), with the model cache's training records and the queue log" -- "$STAGE" \
    && echo "committed $landed run(s)" || echo "nothing new to commit"
}

status() {
  # where the evidence stands: the queue, each batch's staged and finished runs, the run in progress
  test -f "$STAGE/COMMIT" || { echo "no evidence sitting has begun (no $STAGE/COMMIT)"; exit 2; }
  if queue_running; then echo "queue: running"; else echo "queue: not running (begin starts it)"; fi
  [ -f "$LOGS/queue.log" ] && tail -n 3 "$LOGS/queue.log"
  for b in $BATCHES; do
    local staged=0 finished=0 partial
    [ -d "$STAGE/$b/runs" ] && staged=$(find "$STAGE/$b/runs" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ -d "$WORKTREE/papermill_runs/$b/runs" ] && \
      finished=$(grep -l '"status": *"finished"' "$WORKTREE/papermill_runs/$b/runs"/*/run.json 2>/dev/null | wc -l)
    echo "$b: $staged staged on main, $finished finished in the worktree"
    for partial in "$WORKTREE/papermill_runs/$b/runs"/.*.partial; do
      [ -f "$partial/log.txt" ] || continue   # a run in progress (not Dask's scratch folder)
      echo "  in progress: $(basename "$partial" | cut -d. -f2), $(cat "$partial"/*.ipynb 2>/dev/null \
        | grep -o '(key [0-9a-f]\{16\})' | sort -u | wc -l) models trained or loaded so far"
    done
  done
}

reproduce() {
  # in the worktree, at the evidence commit, with its own code first; each report once
  source "$HERE/evidence_env.sh"
  unset CALIBKD_CACHE   # a reproduction trains from nothing, in a temporary cache
  local py=${PY:-$MAIN/.venv/bin/python}
  for item in $REPRODUCE; do
    IFS=: read -r b seed method regime <<< "$item"
    if compgen -G "$WORKTREE/papermill_runs/$b/reproduced/04-seed$seed-*-$regime-$method.json" > /dev/null; then
      echo "reproduced already: $b seed $seed $method ($regime)"; continue
    fi
    echo "$(date -Is) start reproduce $b seed $seed $method ($regime)"
    rc=0
    (cd "$WORKTREE" && "$py" -m calibkd.runs.reproduce "papermill_runs/$b" --seed "$seed" --method "$method" \
      --regime "$regime") >> "$LOGS/reproduce.log" 2>&1 || rc=$?
    echo "$(date -Is) end reproduce $b rc=$rc"
  done
}

finish() {
  # every run of every batch finished and staged, the queue ended
  test -f "$STAGE/COMMIT" || { echo "no evidence in progress (no $STAGE/COMMIT)"; exit 2; }
  if queue_running; then echo "the queue is still running"; exit 2; fi
  [ -d "$WORKTREE" ] && land   # what the last sitting finished
  local py=${PY:-$MAIN/.venv/bin/python} check; check=$(mktemp -d)
  for b in $BATCHES; do
    mkdir -p "$check/$b"; cp "$MAIN/papermill_runs/$b/batch.yaml" "$check/$b/"
    [ -d "$STAGE/$b/runs" ] && cp -a "$STAGE/$b/runs" "$check/$b/runs"
    "$py" -m calibkd.runs status "$check/$b" | tail -1 | grep -q " 0 failed, 0 running, 0 pending" \
      || { "$py" -m calibkd.runs status "$check/$b" || true; echo "batch $b is not finished: not finishing"; rm -rf "$check"; exit 2; }
  done
  rm -rf "$check"
  for b in $BATCHES; do
    # the old runs and what was aggregated from them go; the staged runs take their place
    git -C "$MAIN" rm -r -q --ignore-unmatch "papermill_runs/$b/runs" "papermill_runs/$b/reproduced" \
      "papermill_runs/$b/results.csv" "papermill_runs/$b/results.json" "papermill_runs/$b/paired.csv" \
      "papermill_runs/$b/definition.json" "papermill_runs/$b/compute.json"
    find "$MAIN/papermill_runs/$b" -mindepth 1 -maxdepth 1 ! -name batch.yaml -exec rm -rf {} +   # untracked leftovers (locks)
    for part in runs reproduced definition.json; do
      if [ -e "$STAGE/$b/$part" ]; then mv "$STAGE/$b/$part" "$MAIN/papermill_runs/$b/$part"; fi
    done
    # paired differences against KD where the batch distils students (chapter 04); none otherwise (chapter 02)
    ref=none; grep -q "04_student_distillation" "$MAIN/papermill_runs/$b/batch.yaml" && ref=kd
    "$py" -m calibkd.runs aggregate "$MAIN/papermill_runs/$b" --reference "$ref"
  done
  # what the batches cost, from the training records of every sitting's model cache
  CALIBKD_CACHE="$STAGE/model-records" "$py" -m calibkd.runs compute \
    $(for b in $BATCHES; do echo "$MAIN/papermill_runs/$b"; done) --write
  mv "$STAGE/queue.log" "$MAIN/papermill_runs/evidence-queue.log"
  if [ -f "$STAGE/tempering-audit-glyphs.json" ]; then
    mkdir -p "$MAIN/bench/results"; mv "$STAGE/tempering-audit-glyphs.json" "$MAIN/bench/results/"
  fi
  git -C "$MAIN" rm -r -q --cached --ignore-unmatch "$STAGE"
  rm -rf "$STAGE"
  git -C "$MAIN" add $(for b in $BATCHES; do echo "papermill_runs/$b"; done) papermill_runs/evidence-queue.log
  [ -f "$MAIN/bench/results/tempering-audit-glyphs.json" ] && git -C "$MAIN" add bench/results/tempering-audit-glyphs.json
  # the tables generated from the batches: docs/batches.md's list of them, the README's verdicts (and
  # docs/history.md's table of what changed)
  if [ -f "$MAIN/docs/batches.md" ]; then
    "$py" -m calibkd.runs batches-table --docs "$MAIN/docs/batches.md" --runs-root "$MAIN/papermill_runs"
    git -C "$MAIN" add docs/batches.md
  fi
  if [ -f "$MAIN/README.md" ]; then
    "$py" -m calibkd.runs readme-table --readme "$MAIN/README.md" --runs-root "$MAIN/papermill_runs"
    git -C "$MAIN" add README.md
    [ -f "$MAIN/docs/history.md" ] && git -C "$MAIN" add docs/history.md
  fi
  # chapter 05 reads the batches: re-executed in place (deterministic; seconds)
  if [ -f "$MAIN/notebooks/05_results.py" ]; then
    OMP_WAIT_POLICY=PASSIVE CALIBKD_PROGRESS=0 PYDEVD_DISABLE_FILE_VALIDATION=1 JUPYTER_PLATFORM_DIRS=1 \
      "$py" -m calibkd.course.notebook_tools execute "$MAIN/notebooks/05_results.py"
    git -C "$MAIN" add notebooks/05_results.ipynb
  fi
  echo "finished: review 'git -C $MAIN status', then commit (the README's and docs/history.md's prose follow: docs/batches.md)"
}

case "${1:-}" in
  begin) shift; begin "$@" ;;
  land) land ;;
  status) status ;;
  reproduce) reproduce ;;   # a second argument (the worktree) only names the queue's process (queue_running)
  finish) finish ;;
  *) echo "usage: $0 begin [COMMIT] | land | status | reproduce | finish"; exit 2 ;;
esac
