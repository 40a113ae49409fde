# Sourced by scripts/testbed: starting, stopping and checking the cluster.

K8S_BIN() { echo "$TB_CACHE/kubernetes-$K8S_VERSION/bin"; }
CTR_SOCK() { echo "$RUN/containerd/containerd.sock"; }
NS_PATH="/run/netns/$NETNS"
# The kernel settings kubelet changes (it sets them when protectKernelDefaults is false, and
# refuses to start when it is true and they differ): saved by `up`, restored by `down`.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
CGROUP_HIERARCHIES=(cpu cpuacct cpuset memory devices freezer blkio pids systemd unified)

in_ns() { nsenter --net="$NS_PATH" -- "$@"; }
kc() { "$(K8S_BIN)/kubectl" --kubeconfig "$RUN/kubeconfig/admin.yaml" "$@"; }   # from inside the namespace
kc_ns() { in_ns "$(K8S_BIN)/kubectl" --kubeconfig "$RUN/kubeconfig/admin.yaml" "$@"; }
ctr_() { ctr --address "$(CTR_SOCK)" --namespace k8s.io "$@"; }

# --- processes: each daemon's pid and command line are recorded in $RUN/pids ---------------------
daemon_pid() { # prints the pid of a running daemon NAME, or fails
  local f="$RUN/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  alive "$pid" || return 1
  # The pid must still be our process: same executable as recorded.
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(cat "$RUN/pids/$1.exe")" ]] || return 1
  echo "$pid"
}

# start_daemon NAME ns|host CMD...: starts CMD in its own session, in the namespace or on the host.
start_daemon() {
  local name="$1" where="$2"; shift 2
  if daemon_pid "$name" >/dev/null; then log "$name: already running"; return 0; fi
  mkdir -p "$RUN/logs" "$RUN/pids"
  local exe; exe="$(readlink -f "$(command -v "$1")")"
  if [[ "$where" == ns ]]; then
    setsid nsenter --net="$NS_PATH" -- "$@" >>"$RUN/logs/$name.log" 2>&1 </dev/null &
  else
    setsid "$@" >>"$RUN/logs/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$RUN/pids/$name.pid"
  echo "$exe" >"$RUN/pids/$name.exe"
  log "$name: started (pid $!, log $RUN/logs/$name.log)"
}

# alive PID: the process exists and is not a zombie (a daemon outlives the `up` that started it,
# and whoever inherits it may reap it late).
alive() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "${st:0:1}" != Z ]]
}

stop_daemon() { # stop_daemon NAME: TERM to its process group, KILL after 10 s
  local pid
  pid="$(daemon_pid "$1")" || { rm -f "$RUN/pids/$1.pid"; return 0; }
  # Each daemon leads its own process group (setsid), which holds its children too: socat's
  # forked connection handlers, for one, keep the listening socket open after their parent dies.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "$1: did not stop on TERM, killing"; fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/pids/$1.pid"
  log "$1: stopped"
}

# wait_until NAME SECONDS CMD...: polls CMD every half second; fails with the daemon's log tail.
wait_until() {
  local what="$1" secs="$2" start=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= secs)); then
      log "$what: not ready after ${secs}s"
      [[ -f "$RUN/logs/$what.log" ]] && tail -n 30 "$RUN/logs/$what.log" >&2
      return 1
    fi
    sleep 0.5
  done
  log "$what: ready ($((SECONDS - start))s)"
}

# --- host preparation ------------------------------------------------------------------------------
ensure_packages() {
  local missing=() p
  for p in containerd runc containernetworking-plugins iptables conntrack socat; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null || die "apt-get is missing; install ${missing[*]} by hand"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; } \
    || die "apt-get install ${missing[*]} failed"
}

setup_netns() {
  if [[ ! -e "$NS_PATH" ]]; then
    log "network namespace $NETNS: creating (node address $NODE_IP, no link to the host)"
    ip netns add "$NETNS"
  fi
  ip -n "$NETNS" link set lo up
  # The node's address sits on one end of a veth pair whose two ends are both in the namespace
  # (this kernel has no dummy device): a real interface that leads nowhere.
  if ! ip -n "$NETNS" link show tb0 >/dev/null 2>&1; then
    ip -n "$NETNS" link add tb0 type veth peer name tb1
    ip -n "$NETNS" addr add "$NODE_IP/24" dev tb0
  fi
  ip -n "$NETNS" link set tb1 up
  ip -n "$NETNS" link set tb0 up
  # Nothing leaves the namespace: addresses other than the node's, the pods' and the services'
  # are unreachable. Service addresses need a route for the first lookup of a local connection,
  # before kube-proxy's DNAT sends it to a pod.
  ip -n "$NETNS" route replace unreachable default
  ip -n "$NETNS" route replace "$SERVICE_CIDR" dev tb0 src "$NODE_IP"
  in_ns sysctl -qw net.ipv4.ip_forward=1
  in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: no br_netfilter in the namespace"
  in_ns sysctl -qw net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null || true
}

setup_cgroups() {
  local h d
  for h in "${CGROUP_HIERARCHIES[@]}"; do
    d="/sys/fs/cgroup/$h"
    [[ -d "$d" ]] || continue
    mkdir -p "$d$CGROUP_ROOT"
    if [[ "$h" == cpuset ]]; then
      [[ -s "$d$CGROUP_ROOT/cpuset.cpus" ]] || cat "$d/cpuset.cpus" >"$d$CGROUP_ROOT/cpuset.cpus"
      [[ -s "$d$CGROUP_ROOT/cpuset.mems" ]] || cat "$d/cpuset.mems" >"$d$CGROUP_ROOT/cpuset.mems"
    fi
  done
}

save_sysctls() {
  [[ -f "$RUN/sysctls.saved" ]] && return 0
  local k
  for k in "${KUBELET_SYSCTLS[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$RUN/sysctls.saved"
}

# --- control plane ----------------------------------------------------------------------------------
start_etcd() {
  mkdir -p "$RUN/etcd"
  mountpoint -q "$RUN/etcd" || mount -t tmpfs -o size=2g,mode=0700 testbed-etcd "$RUN/etcd"
  start_daemon etcd ns "$TB_CACHE/etcd-$ETCD_VERSION/bin/etcd" \
    --name testbed --data-dir "$RUN/etcd/data" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster testbed=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_until etcd 60 in_ns curl -sf http://127.0.0.1:2381/health
}

start_apiserver() {
  local p="$RUN/pki"
  start_daemon kube-apiserver ns "$(K8S_BIN)/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --client-ca-file="$p/ca.crt" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$p/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --profiling=false --v=1
  wait_until kube-apiserver 120 kc_ns get --raw /readyz
}

start_host_forward() {
  # The API server on the host's loopback: a socat in the namespace serves a unix socket that a
  # socat on the host connects to (a unix socket does not belong to a network namespace).
  start_daemon apiserver-forward-ns ns "$(command -v socat)" \
    "UNIX-LISTEN:$RUN/apiserver.sock,fork,unlink-early,mode=600" TCP:127.0.0.1:6443
  wait_until apiserver-forward-ns 10 test -S "$RUN/apiserver.sock"
  start_daemon apiserver-forward host "$(command -v socat)" \
    "TCP-LISTEN:$API_PORT,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$RUN/apiserver.sock"
  wait_until apiserver-forward 10 "$(K8S_BIN)/kubectl" --kubeconfig "$RUN/kubeconfig.yaml" get --raw /readyz
}

start_controller_manager() {
  local p="$RUN/pki" k="$RUN/kubeconfig/controller-manager.yaml"
  start_daemon kube-controller-manager ns "$(K8S_BIN)/kube-controller-manager" \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --leader-elect=false \
    --controllers='*' --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --enable-hostpath-provisioner=true \
    --profiling=false --v=1
  wait_until kube-controller-manager 60 in_ns curl -skf https://127.0.0.1:10257/healthz
}

start_scheduler() {
  local k="$RUN/kubeconfig/scheduler.yaml"
  start_daemon kube-scheduler ns "$(K8S_BIN)/kube-scheduler" \
    --kubeconfig="$k" --authentication-kubeconfig="$k" --authorization-kubeconfig="$k" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
  wait_until kube-scheduler 60 in_ns curl -skf https://127.0.0.1:10259/healthz
}

# --- node ------------------------------------------------------------------------------------------
write_containerd_config() {
  local d="$RUN/containerd"
  mkdir -p "$d" "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$d/config.toml" <<EOF
# Generated by scripts/testbed.
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  tolerate_missing_hugepages_controller = true
  # This machine's root lacks CAP_SYS_RESOURCE, so it cannot lower an oom_score_adj (runc fails
  # with "failed to update /proc/self/oom_score_adj: Permission denied"): keep each container's
  # at or above containerd's own, as kind does for rootless nodes.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
  # The pods' network: a bridge in the namespace, addresses from host-local, port mappings.
  cat >"$RUN/cni/net.d/10-testbed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "testbed",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "${POD_CIDR%.*}.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

start_containerd() {
  write_containerd_config
  start_daemon containerd ns /usr/bin/containerd --config "$RUN/containerd/config.toml"
  wait_until containerd 60 ctr --address "$(CTR_SOCK)" version
}

# import_image NAME ARCHIVE: into the node's containerd (namespace k8s.io), unless present.
import_image() {
  if ctr_ images ls -q "name==$1" | grep -x "$1" >/dev/null; then return 0; fi
  log "image $1: importing"
  ctr_ images import "$2" >&2 || die "importing $2 failed"
  ctr_ images ls -q "name==$1" | grep -x "$1" >/dev/null || die "importing $2 did not give the image $1"
}

import_images() {
  local img="$TB_CACHE/images"
  mkdir -p "$img"
  local pause probe coredns
  pause="$img/$(basename "$PAUSE_DIR").tar"
  probe="$img/$(basename "$PROBE_DIR").tar"
  coredns="$img/$(basename "$COREDNS_DIR").tar"
  [[ -f "$pause" ]] || image_from_binaries "$PAUSE_IMAGE" "$pause" /pause -- "$PAUSE_DIR/bin/pause:/pause"
  [[ -f "$probe" ]] || image_from_binaries "$PROBE_IMAGE" "$probe" /probe -- "$PROBE_DIR/bin/probe:/probe"
  [[ -f "$coredns" ]] || image_from_binaries "$COREDNS_IMAGE" "$coredns" /coredns -- \
    "$COREDNS_DIR/bin/coredns:/coredns"
  import_image "$PAUSE_IMAGE" "$pause"
  import_image "$PROBE_IMAGE" "$probe"
  import_image "$COREDNS_IMAGE" "$coredns"
}

start_kubelet() {
  local d="$RUN/kubelet" p="$RUN/pki"
  mkdir -p "$d/root" "$d/pod-logs"
  # kubelet's directory is a shared mount, as on a real node, so that mount propagation works.
  if ! mountpoint -q "$d/root"; then
    mount --bind "$d/root" "$d/root"
    mount --make-rshared "$d/root"
  fi
  : >"$d/resolv.conf"   # pods with dnsPolicy Default get no upstream resolver: there is none
  cat >"$d/config.yaml" <<EOF
# Generated by scripts/testbed. Node settings after kind's (kubernetes-sigs/kind), for cgroup v1.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
address: 0.0.0.0
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization:
  mode: Webhook
tlsCertFile: $p/kubelet-serving.crt
tlsPrivateKeyFile: $p/kubelet-serving.key
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $d/resolv.conf
podLogsDir: $d/pod-logs
podCIDR: $POD_CIDR
maxPods: 110
serializeImagePulls: false
# The node's disk is the host's: never evict or collect images because of it.
imageGCHighThresholdPercent: 100
evictionHard:
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
EOF
  save_sysctls
  start_daemon kubelet ns "$(K8S_BIN)/kubelet" \
    --config="$d/config.yaml" --kubeconfig="$RUN/kubeconfig/kubelet.yaml" \
    --root-dir="$d/root" --cert-dir="$d/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1
  wait_until kubelet 120 kc_ns get node "$NODE_NAME"
  wait_until node 120 kc_ns wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
}

start_kube_proxy() {
  local d="$RUN/kube-proxy"
  mkdir -p "$d"
  cat >"$d/config.yaml" <<EOF
# Generated by scripts/testbed.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $RUN/kubeconfig/kube-proxy.yaml
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
iptables:
  minSyncPeriod: 1s
conntrack:
  # Leave the host-wide conntrack table size and timeouts alone.
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  start_daemon kube-proxy ns "$(K8S_BIN)/kube-proxy" --config="$d/config.yaml" --v=1
  wait_until kube-proxy 60 in_ns curl -sf http://127.0.0.1:10256/healthz
}

# kube-controller-manager's hostPath provisioner makes each volume directory root-owned, mode
# 0750, and the kubelet applies no fsGroup to hostPath volumes, so a non-root pod (the ensemble
# image runs as 65532) could not write its PVC. Real storage honours fsGroup, and kind's
# local-path provisioner makes its directories 0777: this loop does the same for ours, within a
# fraction of a second of their creation (before a pod can be scheduled onto the new claim).
start_volume_permissions() {
  mkdir -p /tmp/hostpath_pv
  start_daemon volume-permissions host "$(command -v bash)" -c \
    'while sleep 0.2; do find /tmp/hostpath_pv -mindepth 1 -maxdepth 1 -type d ! -perm 1777 -exec chmod 1777 {} +; done'
}

apply_addons() {
  log "addons: CoreDNS ($COREDNS_IMAGE, $DNS_IP) and the default StorageClass"
  sed -e "s|@DNS_IP@|$DNS_IP|g" -e "s|@IMAGE@|$COREDNS_IMAGE|g" -e "s|@DOMAIN@|$CLUSTER_DOMAIN|g" \
    "$TB_SRC/manifests/coredns.yaml" | kc_ns apply -f - >&2
  kc_ns apply -f "$TB_SRC/manifests/storageclass.yaml" >&2
  wait_until coredns 180 kc_ns -n kube-system wait --for=condition=Available deployment/coredns --timeout=1s
}

# --- commands --------------------------------------------------------------------------------------
on_up_failure() {
  local rc=$?
  trap - EXIT
  [[ $rc -eq 0 ]] && return 0
  log "up failed (exit $rc)"
  if [[ "${TESTBED_KEEP_ON_FAILURE:-}" == 1 ]]; then
    log "TESTBED_KEEP_ON_FAILURE=1: leaving everything running; logs in $RUN/logs"
    exit "$rc"
  fi
  local keep="$CACHE_ROOT/testbed-last-failure"
  rm -rf "$keep"; mkdir -p "$keep"
  cp -r "$RUN/logs" "$keep/" 2>/dev/null || true
  log "logs kept in $keep/logs; cleaning up"
  cmd_down || true
  exit "$rc"
}

cmd_up() {
  [[ $EUID -eq 0 ]] || die "up needs root (network namespace, mounts, cgroups)"
  local start=$SECONDS
  trap on_up_failure EXIT
  ensure_packages
  build_all
  mkdir -p "$RUN"
  echo "$HELM_BIN" >"$RUN/helm-path"
  log "build cache ready ($((SECONDS - start))s); starting the cluster"
  if ! daemon_pid apiserver-forward >/dev/null && [[ -n "$(ss -Hltn "sport = :$API_PORT" 2>/dev/null)" ]]; then
    die "127.0.0.1:$API_PORT is taken by another program; choose another port with TESTBED_API_PORT"
  fi
  make_pki
  make_kubeconfigs
  setup_netns
  setup_cgroups
  start_etcd
  start_apiserver
  start_host_forward
  start_volume_permissions
  start_controller_manager
  start_scheduler
  start_containerd
  import_images
  if [[ "${TESTBED_PROJECT_IMAGE:-1}" == 1 ]]; then cmd_image >/dev/null; fi
  start_kubelet
  start_kube_proxy
  apply_addons
  if [[ "${TESTBED_SMOKE:-1}" == 1 ]]; then smoke_cluster; fi
  trap - EXIT
  log "up: Kubernetes $K8S_VERSION is running ($((SECONDS - start))s); eval \"\$(scripts/testbed env)\""
}

cmd_env() {
  [[ -f "$RUN/kubeconfig.yaml" ]] || die "the test bed is not up (scripts/testbed up)"
  local helm_dir=""
  [[ -s "$RUN/helm-path" ]] && helm_dir="$(dirname "$(cat "$RUN/helm-path")"):"
  echo "export KUBECONFIG='$RUN/kubeconfig.yaml'"
  echo "export PATH='$(K8S_BIN):$helm_dir'\"\$PATH\""
  echo "export TESTBED_NETNS='$NETNS'"
}

cmd_status() {
  local n pid
  for n in etcd kube-apiserver apiserver-forward-ns apiserver-forward volume-permissions kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    if pid="$(daemon_pid "$n")"; then printf '%-26s running (pid %s)\n' "$n" "$pid"; else printf '%-26s not running\n' "$n"; fi
  done
  if daemon_pid kube-apiserver >/dev/null; then kc_ns get nodes -o wide; kc_ns get pods -A -o wide; fi
}

# Kill what the node left behind: the containers (whose processes live in our cgroup subtree),
# their shims (started by our containerd, recognised by its socket on their command line) and
# the pods' network namespaces.
cleanup_node_leftovers() {
  local h f pid
  # Pod network namespaces, read from the sandboxes' specs while containerd still runs.
  local netns_paths=()
  if daemon_pid containerd >/dev/null; then
    local id
    for id in $(ctr_ containers ls -q 2>/dev/null); do
      while read -r p; do [[ -n "$p" ]] && netns_paths+=("$p"); done < <(ctr_ containers info "$id" 2>/dev/null \
        | jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null)
      ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
  fi
  # Every process in the cgroup subtree of the node's pods.
  for h in "${CGROUP_HIERARCHIES[@]}"; do
    [[ -d "/sys/fs/cgroup/$h$CGROUP_ROOT" ]] || continue
    # A cgroup can vanish between find and read: cat's failure is not down's.
    for pid in $(find "/sys/fs/cgroup/$h$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  stop_daemon containerd
  # Shims of our containerd.
  local sock; sock="$(CTR_SOCK)"
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -- "containerd-shim.* -address $sock" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  local p
  for p in "${netns_paths[@]}"; do
    [[ "$p" == /var/run/netns/cni-* || "$p" == /run/netns/cni-* ]] || continue
    umount "$p" 2>/dev/null || true
    rm -f "$p"
  done
  # Cgroups, deepest first (a cgroup goes once its processes are gone).
  for h in "${CGROUP_HIERARCHIES[@]}"; do
    [[ -d "/sys/fs/cgroup/$h$CGROUP_ROOT" ]] || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      find "/sys/fs/cgroup/$h$CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [[ -d "/sys/fs/cgroup/$h$CGROUP_ROOT" ]] || break
      sleep 0.3
    done
    [[ -d "/sys/fs/cgroup/$h$CGROUP_ROOT" ]] && log "warning: could not remove /sys/fs/cgroup/$h$CGROUP_ROOT"
  done
  return 0
}

cmd_down() {
  [[ $EUID -eq 0 ]] || die "down needs root"
  local start=$SECONDS
  if [[ -d "$RUN" ]]; then
    stop_daemon kube-proxy
    stop_daemon kubelet
    cleanup_node_leftovers || log "warning: cleaning up the node's containers failed part way"
    stop_daemon kube-scheduler
    stop_daemon kube-controller-manager
    stop_daemon volume-permissions
    stop_daemon apiserver-forward
    stop_daemon apiserver-forward-ns
    stop_daemon kube-apiserver
    stop_daemon etcd
    if [[ -f "$RUN/sysctls.saved" ]]; then
      local kv
      while read -r kv; do sysctl -qw "$kv" || log "warning: could not restore $kv"; done <"$RUN/sysctls.saved"
      log "kernel settings kubelet changed: restored"
    fi
    # Every mount under the run directory, deepest first.
    local m
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "warning: could not unmount $m"
    done < <(awk -v r="$RUN" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
  fi
  if [[ -e "$NS_PATH" ]]; then ip netns del "$NETNS" && log "network namespace $NETNS: removed"; fi
  # The hostPath provisioner's volumes (kube-controller-manager's fixed directory).
  rm -rf /tmp/hostpath_pv
  # containerd and runc keep fixed directories under /run/containerd; drop the empty ones.
  if [[ -d /run/containerd ]]; then find /run/containerd -depth -type d -empty -delete 2>/dev/null || true; fi
  rm -rf "$RUN"
  log "down: done ($((SECONDS - start))s)"
}

cmd_import_image() {
  [[ $# -eq 2 ]] || die "usage: scripts/testbed import-image NAME:TAG ARCHIVE"
  daemon_pid containerd >/dev/null || die "the test bed is not up"
  import_image "$1" "$2"
}
