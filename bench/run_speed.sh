#!/bin/sh
# The single-number rows of bench/README.md's speed section: REPS runs each,
# alternating this tree and a base checkout (e.g. `git archive d316321` unpacked in
# /tmp/speed-base) so both see the same machine load.
# Usage: bench/run_speed.sh BASE_TREE [REPS]
BASE=${1:?give the base checkout}
REPS=${2:-3}
PY=.venv/bin/python
for rep in $(seq "$REPS"); do
  for tree in "$BASE" .; do
    $PY bench/pipeline_e2e.py --tree "$tree" --mode single --workers 1 --seconds 10
  done
done
