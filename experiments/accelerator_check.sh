#!/usr/bin/env bash
# Benchmark and a paper-scale reproduce on the machine this runs on (GPU,
# TPU or CPU), both JSONs written to OUT.
#
#   experiments/accelerator_check.sh OUT [--tests] [--reduced]
#
#   OUT/benchmark.json   experiments.benchmark (classifier steps at batch
#                        64/256/1024, data-parallel step on every device,
#                        5 seeds vmapped vs one, alignment, features)
#   OUT/reproduce.json   report.json of the paper config (FSDD at 8 kHz when
#                        the data directory has no TIDIGITS), with its
#                        platform and timings; OUT/reproduce.log its output
#   --tests              also the test suite, its output in OUT/tests.log
#   --reduced            a minute-long smoke of the same steps (CPU tests)
#
# Data: $AVDIGITS_DATA_DIR (or TFDS). Each step has a time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: experiments/accelerator_check.sh OUT [--tests] [--reduced]}
shift
tests=false
reduced=false
for arg in "$@"; do
  case "$arg" in
    --tests) tests=true ;;
    --reduced) reduced=true ;;
    *) echo "error: unknown argument $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

bench=(--output="$out/benchmark.json")
repro=(--workdir="$out/reproduce_workdir" --config=experiments/configs/paper.py
       --noprogress)
if [[ -z "${AVDIGITS_DATA_DIR:-}" || ! -d "${AVDIGITS_DATA_DIR}/tidigits" ]]; then
  repro+=(--config.data.speech=fsdd --config.data.sample_rate=8000)
fi
if $reduced; then
  bench+=(--batch_sizes=64 --steps=1 --repeats=1 --align_iterations=256
          --vmap_seeds=0)
  repro=(--workdir="$out/reproduce_workdir" --config=experiments/configs/offline.py
         --noprogress --config.image.epochs=1 --config.speech.steps=20
         --config.speech.steps_per_chunk=10 --config.align.steps=1024
         --config.align.steps_per_chunk=512 --config.eval.trials=5)
fi

echo "benchmark"
timeout 480 "$python" -m experiments.benchmark "${bench[@]}"
echo "reproduce"
start=$(date +%s.%N)
timeout 480 "$python" -m experiments.reproduce "${repro[@]}" \
  > "$out/reproduce.log" 2>&1 || { tail -n 5 "$out/reproduce.log" >&2; exit 1; }
end=$(date +%s.%N)
cp "$out/reproduce_workdir/report.json" "$out/reproduce.json"
"$python" - "$out/reproduce.json" "$start" "$end" <<'PY'
import json, sys
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
report = json.load(open(path))
report["wall_seconds"] = end - start
json.dump(report, open(path, "w"), indent=1, sort_keys=True)
print(f"reproduce: {end - start:.1f} s wall, annotation "
      f"{report['annotation']['accuracy']:.4f} on "
      f"{report['platform']['device_count']} {report['platform']['backend']} "
      f"device(s)")
PY
if $tests; then
  echo "tests"
  timeout 480 "$python" -m pytest -q -x -p no:cacheprovider tests \
    > "$out/tests.log" 2>&1 || { tail -n 20 "$out/tests.log" >&2; exit 1; }
  tail -n 1 "$out/tests.log"
fi
