#!/usr/bin/env bash
# Install the system packages csi's development, tests and benchmarks need on
# a fresh Debian 12 (bookworm) machine, so that real CRIU checkpoints can be
# made with podman + runc (see the README's "Making fresh real checkpoints"). Run as root. Idempotent:
# every step checks whether its work is already done, so a second run only
# takes a few seconds and changes nothing.
#
#   * bookworm: podman, runc, buildah, skopeo, docker-registry, busybox-static,
#     build tools for a static C workload, python3-venv/-dev, iproute2, curl, jq
#   * sid:      criu >= 4.2 (bookworm's 3.17 cannot dump on Linux 6.x's vDSO
#               layout; 4.1 fails on TCP sockets)
#   * trixie:   checkpointctl (a reference implementation to compare against)
#
# sid and trixie are added through the same mirror as the machine's bookworm
# sources, pinned at priority 100 so that nothing is ever upgraded from them
# unless asked for explicitly with `apt-get install -t SUITE`.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
readonly SOURCES_FILE=/etc/apt/sources.list.d/csi-sid-trixie.sources
readonly PREFS_FILE=/etc/apt/preferences.d/csi-sid-trixie.pref
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
readonly CRIU_MIN=4.2

# Packages from bookworm. runc is listed explicitly so that podman's
# "crun | runc" dependency is satisfied by runc (crun fails on this hybrid
# cgroup setup); containernetworking-plugins provides podman's bridge network
# (Recommends are not installed: they would drag in systemd/dbus).
readonly BOOKWORM_PACKAGES=(
    podman runc conmon containernetworking-plugins iptables buildah skopeo
    docker-registry busybox-static
    zstd xz-utils bzip2 gzip tar
    gcc libc6-dev make
    python3 python3-venv python3-dev
    iproute2 curl jq ca-certificates uuid-runtime apache2-utils wrk
    chromium fonts-dejavu-core
)

step() { printf 'install-system: %s\n' "$*"; }
die() { printf 'install-system: FAILED: %s\n' "$*" >&2; exit 1; }

# Run a command quietly; on failure show the tail of its output and die with
# the given one-line reason.
run_quiet() {
    local reason=$1 log
    shift
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        die "$reason"
    fi
    rm -f "$log"
}

APT_UPDATED=0
apt_update() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        step "apt-get update"
        run_quiet "apt-get update failed (mirror unreachable or key missing?)" \
            apt-get update
        APT_UPDATED=1
    fi
}

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# Print the URI of the machine's bookworm (main archive, not -security)
# source: deb822 *.sources stanzas first, then one-line *.list entries.
detect_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && [ "$f" != "$SOURCES_FILE" ] || continue
        uri=$(awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (match(line, /^[A-Za-z-]+:/)) {
                        key = tolower(substr(line, 1, RLENGTH - 1))
                        val = " " substr(line, RLENGTH + 1) " "
                        gsub(/[ \t]+/, " ", val)
                        if (key == "types") types = val
                        else if (key == "uris") uris = val
                        else if (key == "suites") suites = val
                        else if (key == "enabled") enabled = tolower(val)
                    }
                }
                if (types ~ / deb / && suites ~ / bookworm / && enabled !~ /no/) {
                    split(uris, u, " ")
                    for (k in u) if (u[k] != "") { print u[k]; exit }
                }
            }' "$f")
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        uri=$(sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' "$f" | head -n 1)
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    return 1
}

# Write $2 to file $1 only if its content differs; returns 0 if it changed.
write_if_changed() {
    local path=$1 content=$2
    if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
        return 1
    fi
    printf '%s\n' "$content" >"$path"
    return 0
}

criu_version() {
    command -v criu >/dev/null 2>&1 || return 1
    criu --version 2>/dev/null | awk '/^Version:/ { print $2; exit }'
}

# --------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must be run as root"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian only"
# (No /etc/os-release check: libc6 from sid Breaks base-files << 13.3, so
# after the first run base-files comes from sid and os-release says forky/sid.
# The bookworm apt source found below is what identifies the machine.)

# 1. sid and trixie sources on the existing mirror, pinned low.
mirror=$(detect_mirror) || die "cannot find the bookworm mirror URI in /etc/apt/sources.list{,.d/*.list,.d/*.sources}"
step "mirror: $mirror"
# Check-Valid-Until: the mirror may serve a frozen snapshot, and sid's and
# trixie's Release files expire after a week (bookworm's never do).
sources_content="# Added by csi deploy/dev/install-system.sh: criu from sid, checkpointctl
# from trixie. Pinned low in $PREFS_FILE.
Types: deb
URIs: $mirror
Suites: sid trixie
Components: main
Signed-By: $KEYRING
Check-Valid-Until: no"
prefs_content="# Added by csi deploy/dev/install-system.sh: never take packages from sid or
# trixie unless asked for with 'apt-get install -t sid|trixie'.
Package: *
Pin: release n=sid
Pin-Priority: 100

Package: *
Pin: release n=trixie
Pin-Priority: 100"
changed=0
if write_if_changed "$PREFS_FILE" "$prefs_content"; then changed=1; fi
if write_if_changed "$SOURCES_FILE" "$sources_content"; then changed=1; fi
if [ "$changed" -eq 1 ]; then
    step "sid/trixie sources: written $SOURCES_FILE and $PREFS_FILE (priority 100)"
    apt_update
else
    step "sid/trixie sources: already configured"
fi

# 2. bookworm packages (before criu: once libc6 comes from sid, bookworm's
#    libc6-dev could no longer be installed next to it).
missing=()
for p in "${BOOKWORM_PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "bookworm packages: installing ${missing[*]}"
    apt_update
    run_quiet "apt-get install of bookworm packages failed: ${missing[*]}" \
        apt-get install -y --no-install-recommends "${missing[@]}"
else
    step "bookworm packages: all ${#BOOKWORM_PACKAGES[@]} already installed"
fi

# 3. CRIU >= 4.2 from sid (pulls a newer libc6 from sid as a dependency).
have=$(criu_version || true)
if [ -n "$have" ] && dpkg --compare-versions "$have" ge "$CRIU_MIN"; then
    step "criu: $have already installed (>= $CRIU_MIN)"
else
    step "criu: installing from sid (found '${have:-none}', need >= $CRIU_MIN)"
    apt_update
    run_quiet "apt-get install -t sid criu failed" \
        apt-get install -y --no-install-recommends -t sid criu
    have=$(criu_version || true)
    if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$CRIU_MIN"; then
        die "criu from sid is '${have:-missing}', need >= $CRIU_MIN"
    fi
    step "criu: $have installed"
fi

# 4. checkpointctl from trixie.
if command -v checkpointctl >/dev/null 2>&1; then
    step "checkpointctl: already installed ($(dpkg-query -W -f='${Version}' checkpointctl 2>/dev/null || echo '?'))"
else
    step "checkpointctl: installing from trixie"
    apt_update
    run_quiet "apt-get install -t trixie checkpointctl failed" \
        apt-get install -y --no-install-recommends -t trixie checkpointctl
    step "checkpointctl: $(dpkg-query -W -f='${Version}' checkpointctl) installed"
fi

# 5. The packaged docker-registry service listens on all interfaces with
#    htpasswd auth; tests run their own instance on 127.0.0.1, so keep the
#    packaged one stopped (only relevant where systemd is running).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    if systemctl is-enabled --quiet docker-registry 2>/dev/null \
        || systemctl is-active --quiet docker-registry 2>/dev/null; then
        step "docker-registry: disabling the packaged service (tests run their own)"
        run_quiet "cannot disable docker-registry.service" \
            systemctl disable --now docker-registry
    else
        step "docker-registry: packaged service already disabled"
    fi
else
    step "docker-registry: no systemd, packaged service not running"
fi

# 6. Sanity checks. podman is used with --storage-driver vfs --runtime runc
#    --cgroup-manager cgroupfs on the command line; no system config needed.
for tool in podman runc buildah skopeo gcc busybox zstd jq; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH after installation"
done
[ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"

step "criu check:"
criu_rc=0
criu_out=$(criu check 2>&1) || criu_rc=$?
printf '%s\n' "$criu_out" | sed 's/^/    /'
if [ "$criu_rc" -ne 0 ]; then
    step "warning: 'criu check' failed (exit $criu_rc); make-checkpoint.sh will exit 77 if it cannot dump"
fi

step "versions: criu $(criu_version), $(podman --version), runc $(runc --version | awk 'NR == 1 { print $3 }'), buildah $(buildah --version | awk '{ print $3 }'), checkpointctl $(dpkg-query -W -f='${Version}' checkpointctl)"
step "done"
