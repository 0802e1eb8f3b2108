#!/usr/bin/env bash
# One pass of the accelerator benchmarks, in at most 8 minutes (each part has its own time
# limit; a part that runs out is reported as such and the next one starts):
#   1. DVBPR `paper` preset training step (224x224, full CNN-F, batch 128), batch in memory:
#      float32, mixed precision (mixed_float16), XLA;
#   2. the GAN `authors` preset training step, images/s;
#   3. benchmark 1, the input pipeline, on all host cores (what feeds the device);
#   4. benchmark 3, the exact AUC at Amazon Fashion's size (64,583 users x 234,892 items).
# Usage: benchmarks/device.sh [OUTPUT_DIR]   (default: $OUT, else runs/benchmarks/device)
# Writes one JSON per part, `summary.md` (the table for benchmarks/README.md) and `log.txt`.
# Run from the repository root with the package installed (`make venv`, or PYTHON=...).
set -u
out="${1:-${OUT:-runs/benchmarks/device}}"
python="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python
mkdir -p "$out"
log="$out/log.txt"
: > "$log"
start=$(date +%s)

part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)" | tee -a "$log"
  local tick=$(date +%s)
  timeout "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  echo "   $name: rc=$rc in $(( $(date +%s) - tick ))s" | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$log" 2>&1 || \
  echo "no nvidia-smi: no NVIDIA GPU visible" >> "$log"
"$python" -c "import os, tensorflow as tf; print('TensorFlow', tf.__version__, \
  tf.config.list_physical_devices(), 'host cores', os.cpu_count())" >> "$log" 2>&1

for precision in float32 mixed xla; do
  part "dvbpr_$precision" 75 "$python" -m benchmarks.device_bench --model=dvbpr \
    --preset=paper --precision="$precision" --steps=20 --output="$out/dvbpr_$precision.json"
done
part gan_authors 60 "$python" -m benchmarks.device_bench --model=gan --preset=authors \
  --precision=float32 --steps=20 --output="$out/gan_authors.json"
part input_pipeline 90 "$python" -m benchmarks.run --size=full --only=input_pipeline \
  --output="$out/input_pipeline.json"
part evaluation 90 "$python" -m benchmarks.run --size=full --only=evaluation \
  --output="$out/evaluation.json"

"$python" - "$out" <<'EOF' | tee "$out/summary.md"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| measurement | device | rate |\n|---|---|---|")
for name in ("dvbpr_float32", "dvbpr_mixed", "dvbpr_xla", "gan_authors"):
    path = out / f"{name}.json"
    if not path.exists():
        print(f"| {name} | - | not measured (failed or out of time: log.txt) |")
        continue
    r = json.loads(path.read_text())
    print(f"| {r['model']} {r['preset']} {r['precision']} (batch {r['batch']}) | {r['device']} | "
          f"{r['rate']:,.0f} {r['unit']} |")
for name in ("input_pipeline", "evaluation"):
    path = out / f"{name}.json"
    if not path.exists():
        print(f"| benchmark {name} | host | not measured (failed or out of time: log.txt) |")
        continue
    for bench in json.loads(path.read_text())["benchmarks"]:
        for row in bench["comparisons"]:
            a, b = row["a"], row["b"]
            print(f"| {name}: {a['label']} | host | {a.get('median', 0):,.0f} {a['unit']}, "
                  f"{row['ratio']:.2f}x {b['label']} ({row['note']}) |")
EOF
echo "total $(( $(date +%s) - start ))s" | tee -a "$log"
