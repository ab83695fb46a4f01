# The environment every evidence run is made in, sourced by run_evidence.sh (the batches) and
# evidence_sitting.sh (the reproductions), with WORKTREE and MAIN set: the worktree's own calibkd first
# on the path, main's data folders, OpenMP passive (the 2 cores are shared), no progress bars in logs.
export PYTHONPATH=$WORKTREE \
  CALIBKD_DOWNLOADS=${CALIBKD_DOWNLOADS:-$MAIN/.cache/downloads} \
  CALIBKD_GENERATED=${CALIBKD_GENERATED:-$MAIN/.cache/generated} \
  OMP_WAIT_POLICY=PASSIVE CALIBKD_PROGRESS=0 PYDEVD_DISABLE_FILE_VALIDATION=1 JUPYTER_PLATFORM_DIRS=1
