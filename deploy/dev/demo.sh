#!/usr/bin/env bash
# The csi demo, end to end with real components; only Falco's HTTP POST is played.
#
#   1. a real OCI registry (Debian's docker-registry) on 127.0.0.1
#   2. `csi serve` (local executor, Podman backend) with a bearer token
#   3. a victim container that misbehaves: a dropped implant whose child is a
#      reverse shell (the project's workload, run by podman + runc)
#   4. the Falco alert for it, POSTed as Falco's http_output would
#   5. wait for the capture (CRIU checkpoint, push, pull back, verify, analyze,
#      signed report) and print where the report is, and its summary
#
# Usage: demo.sh [CSI]   (CSI defaults to .venv/bin/csi). Run as root after
# deploy/dev/setup.sh (or let setup.sh run it: it is the README's main job).
# Exit 77 when CRIU cannot checkpoint on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
csi=${1:-$root/.venv/bin/csi}
work=${CSI_DEMO_DIR:-/var/tmp/csi-demo}
export CSI_HOME=$work/home
export CSI_PODMAN_FLAGS="--storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend file"
export CSI_REGISTRY_PLAIN_HTTP=1
read -r -a PODMAN <<< "podman $CSI_PODMAN_FLAGS"
victim=csi-demo-victim
say() { printf '\n==> %s\n' "$*"; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "${PODMAN[@]}" rm -f --time 0 "$victim" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mkdir -p "$work" "$CSI_HOME"
# A fresh receiver journal each time: its guard rails (a 15-minute cooldown per
# container) would otherwise suppress the same victim in a demo run again soon.
rm -f "$CSI_HOME"/receiver/journal.sqlite3*
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "1. a local OCI registry (docker-registry) on 127.0.0.1"
reg_port=$(free_port)
cat > "$work/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$reg_port
EOF
docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$reg_port/v2/" >/dev/null && break; sleep 0.1; done
echo "registry: http://127.0.0.1:$reg_port"

say "2. csi serve (local executor, Podman backend)"
rcv_port=$(free_port)
head -c 24 /dev/urandom | base64 > "$work/token"
export CSI_REGISTRY=127.0.0.1:$reg_port/evidence  # where captures push
"$csi" serve --listen "127.0.0.1:$rcv_port" --executor local --backend podman \
    --token-file "$work/token" > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$rcv_port/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$rcv_port/readyz" >/dev/null || { cat "$work/serve.log"; exit 1; }
echo "receiver: http://127.0.0.1:$rcv_port (Falco's http_output points here)"

say "3. a victim container that misbehaves"
set +e
bash "$root/deploy/dev/make-checkpoint.sh" --keep --name "$victim" --mode reverse \
    --env DB_PASSWORD=demo-not-a-real-password --compress none -o "$work/probe.tar"
rc=$?
set -e
[ "$rc" -eq 0 ] || exit "$rc"  # 77: CRIU cannot checkpoint here
rm -f "$work/probe.tar"
"${PODMAN[@]}" container restore --tcp-established "$victim" >/dev/null
cid=$("${PODMAN[@]}" inspect --format '{{.Id}}' "$victim")
echo "victim: $victim (${cid:0:12}), a dropped implant with a reverse shell child"

say "4. the Falco alert, POSTed as Falco's http_output does"
now=$(date -u +%Y-%m-%dT%H:%M:%S.%N)Z
alert=$(python3 - "$victim" "${cid:0:12}" "$now" <<'EOF'
import json, sys
name, cid, now = sys.argv[1:]
print(json.dumps({
    "time": now, "rule": "Redirect STDOUT/STDIN to Network Connection in Container",
    "priority": "Notice", "source": "syscall", "hostname": "demo-host",
    "output": f"Redirect stdout/stdin to network connection (process=sh command=sh -i "
              f"container_id={cid} container_name={name})",
    "tags": ["T1059", "container", "mitre_execution", "network", "process"],
    "output_fields": {"container.id": cid, "container.name": name, "proc.name": "sh",
                      "proc.cmdline": "sh -i", "proc.vpid": None, "k8s.ns.name": None,
                      "k8s.pod.name": None, "evt.type": "dup2"}}))
EOF
)
answer=$(curl -fsS -X POST "http://127.0.0.1:$rcv_port/falco" \
    -H "Content-Type: application/json" -H "Authorization: Bearer $(cat "$work/token")" \
    -d "$alert")
echo "$answer"
alert_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$answer")

say "5. waiting for the capture"
report=""
for _ in $(seq 600); do
    # this alert's capture: the journal in $CSI_HOME keeps those of earlier demos
    state=$(curl -fs "http://127.0.0.1:$rcv_port/api/v1/captures" \
        -H "Authorization: Bearer $(cat "$work/token")" | python3 -c '
import json, sys
data = json.load(sys.stdin)
caps = data["captures"] if isinstance(data, dict) else data
done = [c for c in caps if c["state"] in ("done", "failed") and c["alert_id"] == sys.argv[1]]
if done:
    c = done[0]
    r = c.get("result") or {}
    print(c["state"], r.get("report_id") or c.get("report_id") or "", c.get("error") or "")
' "$alert_id") || true
    outcome=$(curl -fs "http://127.0.0.1:$rcv_port/api/v1/alerts/$alert_id" \
        -H "Authorization: Bearer $(cat "$work/token")" | python3 -c '
import json, sys
alert = json.load(sys.stdin)
if alert.get("outcome") not in (None, "capture"):
    print(alert["outcome"], alert.get("reason") or "")
') || true
    [ -z "$outcome" ] || { echo "the alert led to no capture: $outcome"; exit 1; }
    case $state in
        done*) report=$(echo "$state" | cut -d' ' -f2); break ;;
        failed*) echo "capture failed: ${state#failed }"; exit 1 ;;
    esac
    sleep 0.5
done
[ -n "$report" ] || { echo "no capture after 5 minutes"; tail -20 "$work/serve.log"; exit 1; }
"$csi" report verify "$report" | tail -1
"$csi" report show "$report" | head -30
echo
echo "demo: report $report in $CSI_HOME/reports (csi report open $report, with CSI_HOME=$CSI_HOME)"
echo "demo: the image is in the registry at 127.0.0.1:$reg_port/evidence"
