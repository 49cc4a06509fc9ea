#!/bin/sh
# Every row of bench/README.md's pipeline table, REPS times, alternating this tree
# and a base checkout (default: main at daad148 in /work/wt/bench-base) so both
# see the same machine load. Usage: bench/run_matrix.sh [BASE_TREE] [REPS]
BASE=${1:-/work/wt/bench-base}
REPS=${2:-3}
PY=.venv/bin/python
for rep in $(seq "$REPS"); do
  for workers in 1 2; do
    for tree in . "$BASE"; do
      n=20000; [ "$tree" = . ] || n=10000
      $PY bench/pipeline_e2e.py --tree "$tree" --mode preloaded --workers $workers --messages $n
      $PY bench/pipeline_e2e.py --tree "$tree" --mode batched --workers $workers --messages 10000
      $PY bench/pipeline_e2e.py --tree "$tree" --mode single --workers $workers --seconds 10
    done
  done
done
