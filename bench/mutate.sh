#!/usr/bin/env bash
# make mutate: mutmut over the modules that hold the rules, each against its own fast tests.
# mutmut 2 mutates in place (and restores); figures go to stdout and bench/mutation.md by hand.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# no .pyc written: a mutant of the same size written within the same second as the last one
# would pass for it (the .pyc check is mtime in seconds + size)
export PYTHONDONTWRITEBYTECODE=1
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # pytest startup dominates a mutant run: no nbval, jupyter
# no addopts (-n 2 needs xdist, not loaded here); `|| exit 1`: mutmut 2 counts only exit code 1
# as killed, so a mutant that breaks the import (pytest's exit 2) would pass for a survivor
OPTS="-x -q -p no:cacheprovider -o addopts="
# module : the fast tests that hold its rules [: slower tests tried on that run's survivors only]
TARGETS=(
  "pfmagic/traffic.py:tests/test_traffic.py"
  "pfmagic/render/mask.py:tests/test_mask.py"
  "pfmagic/backends/local/auth.py:tests/test_local_units.py"
  # the quota arithmetic (the SKU table is data in sku_table.py, checked cell by cell); the
  # quota widget's tests import azure.ai.ml (seconds per mutant): they see only the survivors
  "pfmagic/skus.py:tests/test_skus.py:tests/test_skus.py tests/test_widgets_quota.py"
  # error line mapping: a YAML field path to the line the user wrote (positions: its tests come
  # first in the file, no cell needed); azure-ai-ml's schema errors to one-line problems
  # (diagnose: through real cells, so azure-ai-ml's own messages are what is matched)
  "pfmagic/spec/positions.py:tests/test_bad_cells.py"
  "pfmagic/spec/diagnose.py:tests/test_bad_cells.py"
  # LRO progress: an Azure wait's sub-steps and heartbeats (a scripted poller, no azure import);
  # operations' events, failure / cancel, beats (the progress views see only the survivors)
  "pfmagic/backends/azure/progress.py:tests/test_azure_progress.py"
  "pfmagic/backends/events.py:tests/test_events.py:tests/test_events.py tests/test_widgets_progress.py"
  # /score past FastAPI's middleware: promptflow's app and DirectScore side by side
  "pfmagic/backends/local/direct_score.py:tests/test_direct_score.py"
)
for target in "${@:-${TARGETS[@]}}"; do
  IFS=: read -r module tests more <<<"$target"
  rm -f .mutmut-cache
  echo "== $module ($tests${more:+; survivors: $more})"
  timeout 1800 .venv/bin/mutmut run --paths-to-mutate "$module" --no-progress --simple-output \
    --runner "sh -c '$PY -m pytest $OPTS $tests || exit 1'" >/dev/null
  if [ -n "$more" ]; then  # `mutmut run ID` re-tests one mutant, here against the wider tests
    for id in $(.venv/bin/mutmut result-ids survived); do
      .venv/bin/mutmut run "$id" --paths-to-mutate "$module" --no-progress --simple-output \
        --runner "sh -c '$PY -m pytest $OPTS $more || exit 1'" >/dev/null
    done
  fi
  for id in $(.venv/bin/mutmut result-ids survived); do .venv/bin/mutmut show "$id"; done
  killed=$(.venv/bin/mutmut result-ids killed | wc -w)
  survived=$(.venv/bin/mutmut result-ids survived | wc -w)
  other=$(( $(.venv/bin/mutmut result-ids timeout | wc -w) + $(.venv/bin/mutmut result-ids suspicious | wc -w) ))
  echo "$module: killed $((killed + other)) / $((killed + survived + other)) (timeouts count as killed)"
done
rm -f .mutmut-cache
