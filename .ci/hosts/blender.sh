#!/usr/bin/env bash
# Blender as a Python module for the blender_addon tests (recipe: shared/HOSTS.md). Idempotent, cached in
# $ADAIN_HOST_CACHE:
#   venv/       the engine venv made by .ci/run: gets bpy==5.0.1 here too if it lacks it (torch pinned, untouched)
#   bpy4-venv/  bpy==4.5.4 (Blender 4.5 LTS) alone, no torch: the 4.x tests drive the engine through its worker
#   .bpy4-ready stamp written last
# Every Blender started here uses a throw-away BLENDER_USER_RESOURCES.
set -euo pipefail

CACHE="${ADAIN_HOST_CACHE:-$HOME/.cache/adain-hosts}"
PYTHON="${PYTHON:-python3}"
BPY5="bpy==5.0.1"
BPY4="bpy==4.5.4"
TORCH_PIN="torch==2.13.0"

log() { printf '[blender.sh] %s\n' "$*" >&2; }

check_bpy() {  # python, expected version prefix
    local resources
    resources="$(mktemp -d)"
    local version
    version="$(BLENDER_USER_RESOURCES="$resources" "$1" -c 'import bpy; print(bpy.app.version_string)' 2>/dev/null \
               | tail -n 1)" || true
    rm -rf "$resources"
    [[ "$version" == "$2"* ]]
}

mkdir -p "$CACHE"

# 1. bpy 5.0 in the engine venv (.ci/run installs it; this makes the script usable on its own too).
VENV="$CACHE/venv"
[[ -x "$VENV/bin/python" ]] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
if ! check_bpy "$VENV/bin/python" "5.0.1"; then
    log "installing $BPY5 into $VENV"
    "$VENV/bin/pip" install -q "$BPY5" -c <(echo "$TORCH_PIN")
    check_bpy "$VENV/bin/python" "5.0.1" || { log "ERROR: bpy 5.0.1 does not import in $VENV"; exit 1; }
fi
log "bpy 5.0.1 OK in $VENV"

# 2. bpy 4.5 LTS in its own venv (no torch: ~30 s, 400 MB).
VENV4="$CACHE/bpy4-venv"
if [[ ! -f "$CACHE/.bpy4-ready" || "$(cat "$CACHE/.bpy4-ready")" != "$BPY4" ]] || ! check_bpy "$VENV4/bin/python" "4.5"; then
    rm -f "$CACHE/.bpy4-ready"
    [[ -x "$VENV4/bin/python" ]] || { log "creating $VENV4"; "$PYTHON" -m venv "$VENV4"; }
    log "installing $BPY4 into $VENV4"
    "$VENV4/bin/pip" install -q "$BPY4"
    check_bpy "$VENV4/bin/python" "4.5" || { log "ERROR: $BPY4 does not import in $VENV4"; exit 1; }
    echo "$BPY4" > "$CACHE/.bpy4-ready"
fi
log "bpy 4.5 OK in $VENV4"
