#!/usr/bin/env bash
# Make a real CRIU checkpoint of a running container with podman + runc, the
# way the README's "Making fresh real checkpoints" describes, for tests and benchmarks.
#
#   make-checkpoint.sh [--name N] [--mode miner|reverse|idle|deep] [--mem-mib N]
#                      [--depth N] [--compress none|gzip|zstd]
#                      [--pod P --namespace NS --container C]
#                      [--env KEY=VALUE]... [--keep [--leave-running]] -o OUT.tar
#
# The workload (deploy/dev/workload/implant.c) is built statically and put in
# a FROM scratch image together with busybox (for /bin/sh). The container
# copies the binary to /tmp/.cache/.x (so it shows up in rootfs-diff.tar, like
# a dropped implant) and execs it as pid 1:
#   miner    idles holding its artefacts (pool URL, wallet, AKIA pages, ...)
#   reverse  also a reverse shell: a child `sh -i` on an established TCP socket
#   idle     no implant at all: busybox sleep (a benign baseline)
#   deep     a hostile process tree: the implant forks a chain --depth N
#            (default 1100) processes deep, each waiting for the next
# --mem-mib N makes the implant fill N MiB more of memory (benchmarks).
# --pod/--namespace/--container add the Kubernetes annotations CRI-O puts in
# spec.dump (plus a generated io.kubernetes.pod.uid).
#
# Exit status: 0 on success; 77 when CRIU cannot checkpoint on this machine
# (not root, tools missing, CRIU < 4.2, `criu check` or the dump failing), so
# that tests can skip; 1 on any other failure; 2 on bad usage.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
readonly HERE
readonly WORKLOAD_SRC=$HERE/workload/implant.c
readonly CACHE_DIR=${CSI_WORKLOAD_CACHE:-/var/tmp/csi-workload}
readonly IMAGE_REPO=localhost/csi-workload
readonly CRIU_MIN=4.2
readonly READY_TIMEOUT=${CSI_READY_TIMEOUT:-300}

# Every podman call uses exactly these global flags (vfs: no overlay in
# nested setups; runc: crun fails on this hybrid cgroup layout; cgroupfs: no
# systemd; file events: no journald).
readonly PODMAN=(podman --storage-driver vfs --runtime runc
    --cgroup-manager cgroupfs --events-backend file)
# buildah shares podman's storage, so it must use the same driver.
readonly BUILDAH=(buildah --storage-driver vfs)

log() { printf 'make-checkpoint: %s\n' "$*" >&2; }
die() { printf 'make-checkpoint: FAILED: %s\n' "$*" >&2; exit 1; }
skip() { printf 'make-checkpoint: SKIP: %s\n' "$*" >&2; exit 77; }
usage() {
    sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- arguments
name="" mode=miner mem_mib=0 depth=1100 compress=zstd out="" keep=0 leave_running=0
pod="" namespace="" ctr_name=""
extra_env=()
while [ $# -gt 0 ]; do
    case $1 in
        --name) name=${2:?--name needs a value}; shift 2 ;;
        --mode) mode=${2:?--mode needs a value}; shift 2 ;;
        --mem-mib) mem_mib=${2:?--mem-mib needs a value}; shift 2 ;;
        --depth) depth=${2:?--depth needs a value}; shift 2 ;;
        --compress) compress=${2:?--compress needs a value}; shift 2 ;;
        --pod) pod=${2:?--pod needs a value}; shift 2 ;;
        --namespace) namespace=${2:?--namespace needs a value}; shift 2 ;;
        --container) ctr_name=${2:?--container needs a value}; shift 2 ;;
        --env) extra_env+=("${2:?--env needs KEY=VALUE}"); shift 2 ;;
        --keep) keep=1; shift ;;
        --leave-running) leave_running=1; shift ;;
        -o | --output) out=${2:?-o needs a path}; shift 2 ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[ -n "$out" ] || { log "missing -o OUT.tar"; usage; }
case $mode in miner | reverse | idle | deep) ;; *) log "bad --mode: $mode"; usage ;; esac
[[ $depth =~ ^[0-9]+$ ]] && [ "$depth" -le 3000 ] || { log "bad --depth: $depth"; usage; }
case $compress in none | gzip | zstd) ;; *) log "bad --compress: $compress"; usage ;; esac
[[ $mem_mib =~ ^[0-9]+$ ]] || { log "bad --mem-mib: $mem_mib"; usage; }
# podman's own name rule: never an option (--latest), a path or a control character
if [ -n "$name" ] && ! [[ $name =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]]; then
    log "bad --name: $(printf '%q' "$name") (podman allows [a-zA-Z0-9][a-zA-Z0-9_.-]*)"
    usage
fi
k8s_given=0
for v in "$pod" "$namespace" "$ctr_name"; do [ -n "$v" ] && k8s_given=$((k8s_given + 1)); done
if [ "$k8s_given" -ne 0 ] && [ "$k8s_given" -ne 3 ]; then
    log "--pod, --namespace and --container go together"
    usage
fi
if [ "$mode" = idle ] || [ "$mode" = deep ] && [ "$mem_mib" -gt 0 ]; then
    log "warning: --mem-mib is ignored in $mode mode"
fi
[ -n "$name" ] || name=csi-$mode-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

# ---------------------------------------------------------------- preflight
[ "$(id -u)" -eq 0 ] || skip "must run as root (rootless podman cannot checkpoint)"
for tool in podman buildah runc criu gcc sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool not installed (run deploy/dev/install-system.sh)"
done
[ -x /bin/busybox ] || skip "/bin/busybox missing (install busybox-static)"
criu_ver=$(criu --version 2>/dev/null | awk '/^Version:/ { print $2; exit }')
dpkg --compare-versions "${criu_ver:-0}" ge "$CRIU_MIN" \
    || skip "criu ${criu_ver:-?} < $CRIU_MIN cannot dump on this kernel (install it from sid)"
if ! criu_out=$(criu check 2>&1); then
    skip "criu check failed: $(printf '%s\n' "$criu_out" | grep -m1 -E 'Error|error' || printf '%s' "$criu_out" | tail -n 1)"
fi

# ------------------------------------------------------------ image (cached)
# The tag is a hash of everything that goes into the image, so an unchanged
# workload is never rebuilt and a changed one always is.
containerfile='FROM scratch
COPY busybox /bin/busybox
COPY implant /opt/csi/implant
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && /bin/busybox mkdir -p -m 1777 /tmp && /bin/busybox mkdir -p /root /etc && echo root:x:0:0:root:/root:/bin/sh > /etc/passwd"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
'
build_flags=(-O2 -static -pthread)
tag=$({
    cat "$WORKLOAD_SRC"
    printf '%s\n' "$containerfile" "${build_flags[*]}"
    sha256sum </bin/busybox
} | sha256sum | cut -c1-12)
image=$IMAGE_REPO:$tag
if "${PODMAN[@]}" image exists "$image"; then
    log "image: $image (cached)"
else
    log "image: building $image"
    ctx=$CACHE_DIR/$tag
    rm -rf "$ctx"
    mkdir -p "$ctx"
    gcc "${build_flags[@]}" -o "$ctx/implant" "$WORKLOAD_SRC" \
        || die "cannot build $WORKLOAD_SRC statically (gcc/libc6-dev missing?)"
    cp /bin/busybox "$ctx/busybox"
    printf '%s' "$containerfile" >"$ctx/Containerfile"
    "${BUILDAH[@]}" bud --isolation chroot --layers=false -q -t "$image" \
        -f "$ctx/Containerfile" "$ctx" >/dev/null \
        || die "buildah bud of $image failed"
fi

# ---------------------------------------------------------------- container
case $mode in
    miner | reverse)
        cmd=(/bin/sh -c "mkdir -p /tmp/.cache && cp /opt/csi/implant /tmp/.cache/.x && exec /tmp/.cache/.x $mode 1") ;;
    idle)
        cmd=(/bin/sh -c 'echo ready mode=idle; exec sleep 2147483647') ;;
    deep)
        cmd=(/opt/csi/implant deep "$depth") ;;
esac
nproc=1024
[ "$mode" != deep ] || nproc=$((depth + 64))
run_args=(run -d --replace --name "$name" --log-driver k8s-file
    --ulimit nofile=1024:1024 --ulimit "nproc=$nproc:$nproc" --pids-limit "$((nproc + 64))")
if [ "$mem_mib" -gt 0 ] && [ "$mode" != idle ] && [ "$mode" != deep ]; then
    run_args+=(--env "CSI_MEM_MIB=$mem_mib")
fi
for e in "${extra_env[@]}"; do run_args+=(--env "$e"); done
pod_uid=""
if [ "$k8s_given" -eq 3 ]; then
    pod_uid=$(cat /proc/sys/kernel/random/uuid)
    run_args+=(
        --annotation "io.kubernetes.pod.name=$pod"
        --annotation "io.kubernetes.pod.namespace=$namespace"
        --annotation "io.kubernetes.container.name=$ctr_name"
        --annotation "io.kubernetes.pod.uid=$pod_uid"
    )
fi

cid=""
cleanup() {
    if [ -n "$cid" ] && [ "$keep" -eq 0 ]; then
        "${PODMAN[@]}" rm -f --time 0 "$cid" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "container: starting $name ($mode${pod_uid:+, pod $namespace/$pod uid $pod_uid})"
cid=$("${PODMAN[@]}" "${run_args[@]}" "$image" "${cmd[@]}") \
    || die "podman run failed"
cid=${cid##*$'\n'}  # --replace may first print what it replaced: the new id is the last line

# Wait for the workload's "ready" line (memory fill takes a few seconds).
deadline=$((SECONDS + READY_TIMEOUT))
until "${PODMAN[@]}" logs "$cid" 2>/dev/null | grep -q '^ready'; do
    state=$("${PODMAN[@]}" inspect -f '{{.State.Status}}' "$cid" 2>/dev/null || echo gone)
    if [ "$state" != running ]; then
        "${PODMAN[@]}" logs "$cid" 2>&1 | tail -n 5 >&2 || true
        die "container $name is $state before printing ready"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "no ready line from $name after ${READY_TIMEOUT}s"
    sleep 0.2
done
log "container: $("${PODMAN[@]}" logs "$cid" 2>/dev/null | grep -m1 '^ready')"

# --------------------------------------------------------------- checkpoint
log "checkpoint: exporting to $out (compress $compress)"
rm -f "$out"
ckpt_flags=(--export "$out" --compress "$compress" --tcp-established)
[ "$leave_running" -eq 0 ] || ckpt_flags+=(--leave-running)
if ! ckpt_out=$("${PODMAN[@]}" container checkpoint "${ckpt_flags[@]}" -- "$cid" 2>&1); then
    # Name CRIU's first error from dump.log when there is one.
    dump_log=$("${PODMAN[@]}" inspect -f '{{.StaticDir}}' "$cid" 2>/dev/null || true)/dump.log
    reason=$(grep -m1 -E '^\(?[0-9. ]*\)? *Error' "$dump_log" 2>/dev/null \
        || printf '%s\n' "$ckpt_out" | grep -m1 -iE 'error|fail' \
        || printf '%s\n' "$ckpt_out" | tail -n 1)
    rm -f "$out"
    skip "CRIU could not checkpoint $name: $(printf '%s' "$reason" | tr -s '\n\t' '  ' | cut -c1-300)"
fi
[ -s "$out" ] || die "podman reported success but $out is missing or empty"

if [ "$keep" -eq 1 ]; then
    log "container: kept $name ($cid)"
fi
size=$(stat -c %s "$out")
sum=$(sha256sum "$out" | cut -d' ' -f1)
printf '%s\n' "$out"
printf 'sha256 %s  size %s\n' "$sum" "$size"
