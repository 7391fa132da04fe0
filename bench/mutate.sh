#!/usr/bin/env bash
# make mutate: mutmut over the modules that hold the rules, each against its own fast tests.
# mutmut 2 mutates in place (and restores); figures go to stdout and bench/mutation.md by hand.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # pytest startup dominates a mutant run: no nbval, jupyter
# module : the fast tests that hold its rules [: slower tests tried on that run's survivors only]
TARGETS=(
  "pfmagic/traffic.py:tests/test_traffic.py"
  "pfmagic/render/mask.py:tests/test_mask.py"
  "pfmagic/backends/local/auth.py:tests/test_local_units.py"
  # the SKU table is checked cell by cell by test_skus' first test (-x stops there); the quota
  # widget's tests import azure.ai.ml (seconds per mutant), so they see only the survivors
  "pfmagic/skus.py:tests/test_skus.py:tests/test_skus.py tests/test_widgets_quota.py"
)
for target in "${@:-${TARGETS[@]}}"; do
  IFS=: read -r module tests more <<<"$target"
  rm -f .mutmut-cache
  echo "== $module ($tests${more:+; survivors: $more})"
  timeout 1800 .venv/bin/mutmut run --paths-to-mutate "$module" --no-progress --simple-output \
    --runner "$PY -m pytest -x -q -p no:cacheprovider $tests" >/dev/null
  if [ -n "$more" ]; then  # `mutmut run ID` re-tests one mutant, here against the wider tests
    for id in $(.venv/bin/mutmut result-ids survived); do
      .venv/bin/mutmut run "$id" --paths-to-mutate "$module" --no-progress --simple-output \
        --runner "$PY -m pytest -x -q -p no:cacheprovider $more" >/dev/null
    done
  fi
  .venv/bin/mutmut results | sed -n '/Survived/,/^$/p'
  killed=$(.venv/bin/mutmut result-ids killed | wc -w)
  survived=$(.venv/bin/mutmut result-ids survived | wc -w)
  other=$(( $(.venv/bin/mutmut result-ids timeout | wc -w) + $(.venv/bin/mutmut result-ids suspicious | wc -w) ))
  echo "$module: killed $((killed + other)) / $((killed + survived + other)) (timeouts count as killed)"
done
rm -f .mutmut-cache
