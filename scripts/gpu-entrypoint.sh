#!/usr/bin/env bash
# Entry point of the GPU worker image: with PACKSHOT_ORCHESTRATION__GPU_WORKERS=served (the image's
# default) it starts one resident GPU task worker per card (`python -m flows.gpu_worker --gpu <uuid>`,
# cards from `nvidia-smi`, or the comma-separated UUIDs in PACKSHOT_GPU_CARDS), then runs the command
# it was given: the Prefect process worker that picks up flow runs and hands their batches to the task
# workers. When any of these processes exits, the others are stopped and the container exits with its
# status, so the restart policy brings all of them back together.
# A task worker that finds no usable CUDA card (CPU-only torch, a driver older than the CUDA build, no
# --gpus) refuses to start with one line (flows/gpu_worker.py), so the container exits instead of
# running FLUX on the CPU; PACKSHOT_DEVICE=cpu serves on the CPU on purpose.
set -euo pipefail

pids=()
if [[ "${PACKSHOT_ORCHESTRATION__GPU_WORKERS:-in-process}" == "served" ]]; then
    if [[ -n "${PACKSHOT_GPU_CARDS:-}" ]]; then
        IFS=, read -r -a cards <<< "${PACKSHOT_GPU_CARDS}"
    else
        mapfile -t cards < <(nvidia-smi --query-gpu=uuid --format=csv,noheader 2>/dev/null || true)
    fi
    if [[ ${#cards[@]} -eq 0 ]]; then
        echo "packshot: no GPU visible (nvidia-smi lists none); run with --gpus, set PACKSHOT_GPU_CARDS," \
            "or PACKSHOT_ORCHESTRATION__GPU_WORKERS=in-process" >&2
        exit 1
    fi
    for card in "${cards[@]}"; do
        python -m flows.gpu_worker --gpu "${card// /}" &
        pids+=("$!")
    done
fi

"$@" &
pids+=("$!")
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
status=0
wait -n || status=$?
kill -TERM "${pids[@]}" 2>/dev/null || true
wait || true
exit "${status}"
