#!/usr/bin/env bash
# GIMP 3.0.4 (Debian 13) for the real-GIMP tests: installed natively on Debian 13, otherwise in a cached,
# debootstrapped trixie chroot at $ADAIN_HOST_CACHE/gimp-chroot (never `apt-get install -t trixie` on the host).
#
# Usage:
#   .ci/hosts/gimp.sh                          prepare (idempotent, cached) and verify GIMP + the engine venv
#   .ci/hosts/gimp.sh exec [--bind DIR]... -- CMD...
#                                              run CMD inside GIMP's Debian 13 (the chroot, or natively). The repo,
#                                              the engine venv, its Python install and every --bind DIR appear at the
#                                              same paths. Mounts live in a private mount + PID namespace: they vanish,
#                                              and every process started inside (workers too) is killed, when CMD exits.
#   .ci/hosts/gimp.sh status                   prints "native", "chroot" or "missing"; exit 0 only when ready
set -euo pipefail

CACHE=${ADAIN_HOST_CACHE:-$HOME/.cache/adain-hosts}
ROOT=$CACHE/gimp-chroot
VENV=$CACHE/venv
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF=$REPO/.ci/hosts/gimp.sh
READY=$ROOT/.adain-gimp-ready
# xvfb + xdotool: the undo test drives the real GIMP UI (Edit > Undo has no PDB procedure).
PACKAGES="gimp python3-gi gir1.2-gimp-3.0 xvfb xauth xdotool"
CHROOT_ENV=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

log() { echo "[gimp.sh] $*" >&2; }
die() { echo "[gimp.sh] ERROR: $*" >&2; exit 1; }

is_native() { [[ "$(cut -d. -f1 /etc/debian_version 2>/dev/null)" == 13 ]]; }

mode() {
    if is_native; then
        command -v gimp-console-3.0 >/dev/null && command -v Xvfb >/dev/null && command -v xdotool >/dev/null \
            && echo native || echo missing
    elif [[ -f $READY && "$(head -1 "$READY")" == "$PACKAGES" ]]; then
        echo chroot
    else
        echo missing
    fi
}

python_root() {
    # The real Python install the venv's bin/python points into (the pyenv version dir on these machines).
    [[ -x $VENV/bin/python ]] || return 0
    "$VENV/bin/python" -c 'import sys; print(sys.base_prefix)'
}

# Runs inside `unshare --mount --pid --fork`: the mounts below are private to this namespace.
inner() {
    local binds=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        [[ $1 == --bind ]] || die "exec: unknown option $1"
        binds+=("$2"); shift 2
    done
    [[ ${1:-} == -- ]] && shift
    [[ $# -gt 0 ]] || die "exec: no command"
    if is_native; then
        exec "$@"
    fi
    mount --make-rprivate /
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"
    mount -t tmpfs tmpfs "$ROOT/dev/shm"
    mount -t tmpfs tmpfs "$ROOT/tmp"    # nothing (X sockets, worker sockets) survives between runs
    local pyroot dir
    pyroot=$(python_root)
    # Shortest paths first, so that a folder bound inside another one is not hidden by it.
    while IFS= read -r dir; do
        [[ -d $dir ]] || continue
        mkdir -p "$ROOT$dir"
        mount --bind "$dir" "$ROOT$dir"
    done < <(printf '%s\n' "$REPO" "$VENV" $pyroot "${binds[@]}" | awk '{ print length, $0 }' | sort -n | cut -d" " -f2-)
    [[ -f /etc/resolv.conf ]] && cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
    exec chroot "$ROOT" "$@"
}

run_inside() {
    # --kill-child: when CMD exits, every process left in the namespace (e.g. an idle engine worker) is killed and the
    # mounts disappear with it, so a failed test can never leave bind mounts under the cache.
    unshare --mount --propagation private --pid --fork --kill-child -- bash "$SELF" __inner "$@"
}

exec_inside() {
    # exec: the caller's process *is* unshare, so killing it (e.g. a test timeout) kills the whole namespace.
    exec unshare --mount --propagation private --pid --fork --kill-child -- bash "$SELF" __inner "$@"
}

setup_native() {
    if [[ $(mode) == missing ]]; then
        log "installing $PACKAGES (Debian 13 host)"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
    fi
}

setup_chroot() {
    [[ -f $READY && "$(head -1 "$READY")" == "$PACKAGES" ]] && return 0
    grep -q " $ROOT[/ ]" /proc/mounts && die "something is mounted under $ROOT; unmount it first"
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap (host)"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
    fi
    if [[ ! -f $ROOT/.adain-debootstrap-done ]]; then
        local mirror
        mirror=$(grep -h "^URIs:" /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d" " -f2 || true)
        [[ -n $mirror ]] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
        log "debootstrap trixie from $mirror into $ROOT (~1 min)"
        rm -rf "$ROOT.partial"
        debootstrap --variant=minbase trixie "$ROOT.partial" "$mirror" >"$CACHE/gimp-debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/gimp-debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/gimp-debootstrap.log)"; }
        touch "$ROOT.partial/.adain-debootstrap-done"
        rm -rf "$ROOT"
        mv "$ROOT.partial" "$ROOT"
    fi
    log "installing $PACKAGES in the chroot (~1 min)"
    run_inside -- "${CHROOT_ENV[@]}" sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $PACKAGES && apt-get clean" \
        >"$CACHE/gimp-apt.log" 2>&1 || { tail -20 "$CACHE/gimp-apt.log" >&2; die "apt-get in the chroot failed (log: $CACHE/gimp-apt.log)"; }
    { echo "$PACKAGES"; run_inside -- "${CHROOT_ENV[@]}" gimp-console-3.0 --version; } >"$READY.tmp"
    mv "$READY.tmp" "$READY"
}

verify() {
    local version
    version=$(run_inside -- "${CHROOT_ENV[@]}" gimp-console-3.0 --version)
    log "$version"
    [[ $version == *" 3."* ]] || die "expected GIMP 3, got: $version"
    if [[ -x $VENV/bin/python ]]; then
        run_inside -- "${CHROOT_ENV[@]}" "$VENV/bin/python" -c \
            'import sys, torch; print("engine python in GIMP root:", sys.version.split()[0], "torch", torch.__version__)' >&2 \
            || die "the engine venv's python does not run inside the GIMP root"
    else
        log "no engine venv at $VENV yet: skipped the engine-python check"
    fi
}

main() {
    case ${1:-setup} in
        __inner) shift; inner "$@" ;;
        exec) shift; [[ $(mode) != missing ]] || die "GIMP 3 is not set up; run $SELF"; exec_inside "$@" ;;
        status) mode; [[ $(mode) != missing ]] ;;
        setup)
            [[ $(id -u) == 0 ]] || die "needs root (debootstrap, chroot, mounts)"
            mkdir -p "$CACHE"
            exec 9>"$CACHE/gimp.lock"
            flock 9
            if is_native; then setup_native; else setup_chroot; fi
            verify
            log "ready ($(mode))"
            ;;
        *) die "unknown command $1" ;;
    esac
}

main "$@"
