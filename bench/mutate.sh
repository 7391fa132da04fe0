#!/usr/bin/env bash
# make mutate: mutmut over the modules that hold the rules, each against its own fast tests.
# mutmut 2 mutates in place (and restores); figures go to stdout and bench/mutation.md by hand.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # pytest startup dominates a mutant run: no nbval, jupyter
# module : the tests that hold its rules
TARGETS=(
  "pfmagic/traffic.py:tests/test_traffic.py"
  "pfmagic/render/mask.py:tests/test_mask.py"
  "pfmagic/backends/local/auth.py:tests/test_local_units.py"
  "pfmagic/skus.py:tests/test_skus.py"
)
for target in "${@:-${TARGETS[@]}}"; do
  module=${target%%:*}
  tests=${target#*:}
  rm -f .mutmut-cache
  echo "== $module ($tests)"
  timeout 1800 .venv/bin/mutmut run --paths-to-mutate "$module" --no-progress --simple-output \
    --runner "$PY -m pytest -x -q -p no:cacheprovider $tests" >/dev/null
  .venv/bin/mutmut results | sed -n '/Survived/,/^$/p'
  killed=$(.venv/bin/mutmut result-ids killed | wc -w)
  survived=$(.venv/bin/mutmut result-ids survived | wc -w)
  other=$(( $(.venv/bin/mutmut result-ids timeout | wc -w) + $(.venv/bin/mutmut result-ids suspicious | wc -w) ))
  echo "$module: killed $((killed + other)) / $((killed + survived + other)) (timeouts count as killed)"
done
rm -f .mutmut-cache
