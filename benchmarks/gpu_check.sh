#!/usr/bin/env bash
# The GPU check, one prepared script for a lent GPU machine (keep it under 8 minutes):
#   0. first, the bundled model trained further: the quickstart recipe fine-tuned from mmnist-cpu
#      (--model.init_from mmnist-cpu, lr 3e-3, free running, batch 32) for 3 minutes, then its end-of-fit
#      report on 500 surrogate sequences; the full checkpoint stays under
#      $OUT/runs/quickstart/version_0/checkpoints/ (bundle it with benchmarks/bundle_model.py --ckpt ...
#      once its report beats the bundled model's; say in the model card where it was trained);
#   1. the paper's 3-D config at batch 16: training step time, sequences/s, torch.cuda.max_memory_allocated
#      per sample with and without memory saving (the paper claims 224 MB/sample), inference frames/s
#      (OpenSTL measured 10 for CrevNet on a V100); the same with bf16 autocast;
#   1b. streaming inference (benchmarks/inference.py): predicted frames/s and p95 latency per new frame of the
#      paper model at batch 1 and 16, eager and torch.compile, on the device;
#   2. benchmarks/memory.py per memory-saving mode (off, encoder, full): saved MB per sample and
#      torch.cuda.max_memory_allocated at batch 8 and 16, 20 and 40 frames, each run in a fresh process.
# Usage:  bash benchmarks/gpu_check.sh            (on the GPU machine; writes under $OUT or ./gpu_check)
#         GPU_CHECK_CPU=1 bash benchmarks/gpu_check.sh   (tiny shapes on the CPU: tests the script itself)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check}"
mkdir -p "$out"
export CREVNET_DATA_DIR="${CREVNET_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export WANDB_MODE=offline
if ! python -c "import crevnet" 2>/dev/null; then
  pip install -q torch==2.13.0 2>/dev/null || true   # the GPU machine may bring its own torch
  pip install -q -e . >/dev/null
fi
if [[ "${GPU_CHECK_CPU:-0}" == 1 ]]; then
  device=cpu; bench=(--batch 2 --size 16 --steps 1 --warmup 1 --threads 2)
  # bf16 on a CPU: PyTorch's own bf16 Conv3d backward (memory saving off) took 50 s for one tiny step on
  # the AMX Xeon beside a training, past the 120 s limit with the rest; the modes with crevnet's conv
  # backward take ~5 s, and the script's steps are what this path tests
  bf16_modes=(--modes encoder full)
  mem=(--size 16 --steps 1 --threads 2 --batches 2 --frames-list 6)
  tune=(--trainer.accelerator cpu --trainer.max_time null --trainer.max_steps 2 --trainer.val_check_interval 1
        --trainer.limit_val_batches 1 --data.batch_size 2 --data.num_frames 12 --data.train_size 4 --data.val_size 2
        --data.test_size 2 --model.context 4)
  report_limit=2
  infer=(--device cpu --size 16 --frames 3 --warmup 1 --threads 2); infer_batches=(2); infer_backends=(eager)
else
  device=cuda; bench=(--batch 16 --steps 5 --warmup 2); bf16_modes=()
  mem=(--steps 3 --batches 8 16 --frames-list 20 40)
  tune=(--trainer.accelerator gpu --trainer.devices 1 --trainer.max_time 00:00:03:00 --data.batch_size 32
        --data.num_workers 8)
  report_limit=500
  infer=(--device cuda --frames 100 --warmup 20); infer_batches=(1 16); infer_backends=(eager compiled)
fi
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$out/env.txt"
# 0. The bundled recipe trained further on the device; the end-of-fit report scores $report_limit sequences.
python - "$out/tune_config.yaml" "$report_limit" <<'PY'
import sys, yaml
cfg = yaml.safe_load(open("configs/quickstart.yaml"))
for cb in cfg["trainer"]["callbacks"]:
    if cb["class_path"].endswith("FitReport"):
        cb.setdefault("init_args", {})["num_sequences"] = int(sys.argv[2])
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PY
timeout 300 crevnet fit --config "$out/tune_config.yaml" "${tune[@]}" --model.init_from mmnist-cpu --model.lr 0.003 \
  --model.schedule.warmup_steps 100 --model.sampling.start 1.0 --model.sampling.end 1.0 \
  --trainer.logger.init_args.save_dir "$out/runs" --trainer.default_root_dir "$out/runs" \
  > "$out/tune.log" 2>&1 || echo "bundled-model fine-tune stopped (see tune.log)" | tee -a "$out/env.txt"
timeout 240 python benchmarks/device_bench.py --config configs/mmnist_crevnet3d.yaml --device "$device" "${bench[@]}" \
  | tee "$out/bench_fp32.jsonl"
timeout 120 python benchmarks/device_bench.py --config configs/mmnist_crevnet3d.yaml --device "$device" "${bench[@]}" --bf16 "${bf16_modes[@]}" \
  | tee "$out/bench_bf16.jsonl" || echo "bf16 run failed or timed out" | tee -a "$out/env.txt"
timeout 200 python benchmarks/memory.py --config configs/mmnist_crevnet3d.yaml --device "$device" --sweep \
  --layers-list --stage-scales "${mem[@]}" --plot "$out/memory.png" \
  | tee "$out/memory.jsonl" || echo "memory sweep failed or timed out" | tee -a "$out/env.txt"
for b in "${infer_batches[@]}"; do
  timeout 150 python benchmarks/inference.py --config configs/mmnist_crevnet3d.yaml --batch "$b" "${infer[@]}" \
    --backend "${infer_backends[@]}" | tee -a "$out/inference.jsonl" \
    || echo "inference benchmark (batch $b) failed or timed out" | tee -a "$out/env.txt"
done
echo "gpu_check done: $out"
