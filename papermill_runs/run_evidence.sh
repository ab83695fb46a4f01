#!/bin/bash
# Runs the study's evidence batches (issue 19) in order, at one commit, in a
# git worktree of their own, so that development can go on in the main
# checkout meanwhile (docs/batches.md, "Evidence at one commit"). Resumable:
# finished runs are skipped, so run it again after an interruption.
#
#   git worktree add -b evidence ../evidence <commit>      # once
#   papermill_runs/run_evidence.sh ../evidence             # hours on 2 CPU cores
#
# The worktree uses this checkout's virtual environment (its own calibkd
# first on PYTHONPATH) and model cache (model keys carry the training code's
# fingerprint, so models of other code are never reused). Each batch's wall
# time is logged to $LOGS/queue.log.
set -u
WORKTREE=$(cd "${1:?usage: run_evidence.sh WORKTREE}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)   # this script's folder: evidence_env.sh lies beside it
MAIN=$(cd "$(dirname "$0")/.." && pwd)
LOGS=${LOGS:-$WORKTREE/../evidence-logs}
mkdir -p "$LOGS"
cd "$WORKTREE"
test -z "$(git status --porcelain -- calibkd notebooks)" || { echo "the worktree's calibkd/ or notebooks/ is not clean"; exit 2; }
source "$HERE/evidence_env.sh"
export CALIBKD_CACHE=${CALIBKD_CACHE:-$MAIN/.cache/models}
PY=$MAIN/.venv/bin/python
for b in tuning-fmnist reference-fmnist long-tail-fmnist GLYPHDATA tuning-glyphs glyphs-diagnosis glyphs-central AUDIT; do
  if [ "$b" = AUDIT ]; then
    # how much the first build's tempering got wrong on the glyph teachers the batches just trained (they are
    # only in this machine's model cache): docs/history.md; a sitting lands it, finish moves it to bench/results/
    out=$LOGS/tempering-audit-glyphs.json
    if [ ! -f "$out" ]; then
      echo "$(date -Is) start tempering audit (glyphs)"
      $PY bench/tempering_audit.py --profile default --dataset glyphs --out "$out" >> "$LOGS/audit.log" 2>&1
      echo "$(date -Is) end tempering audit rc=$?"
    fi
    continue
  fi
  if [ "$b" = GLYPHDATA ]; then
    echo "$(date -Is) start glyph data"
    # the 46 Debian font packages (apt, as root), then the rendered dataset
    { $PY -m calibkd.data.fetch glyphs && $PY -m calibkd.data.glyphs; } >> "$LOGS/glyphdata.log" 2>&1
    echo "$(date -Is) end glyph data rc=$?"
    continue
  fi
  echo "$(date -Is) start $b"
  start=$(date +%s)
  $PY -m calibkd.runs run "papermill_runs/$b" >> "$LOGS/$b.log" 2>&1
  rc=$?
  echo "$(date -Is) end $b rc=$rc wall=$(( $(date +%s) - start ))s"
  [ $rc -ne 0 ] && { echo "stopping: $b failed"; exit $rc; }
done
