# Sourced by scripts/testbed: the cluster's PKI with openssl, and the kubeconfigs.
# Everything lives in $RUN/pki and is made anew by each `up` after a `down`.

_ext() { # _ext FILE KEY_USAGE [SAN]: an openssl extension file for a leaf certificate
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $2"
    if [[ -n "${3:-}" ]]; then echo "subjectAltName = $3"; fi
  } >"$1"
}

# leaf NAME SUBJECT USAGE [SAN]: NAME.key and NAME.crt signed by the cluster CA.
_leaf() {
  local dir="$RUN/pki" name="$1" subj="$2" usage="$3" san="${4:-}"
  openssl genrsa -out "$dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  _ext "$dir/$name.ext" "$usage" "$san"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

make_pki() {
  local dir="$RUN/pki"
  if [[ -f "$dir/.complete" ]]; then return 0; fi
  log "pki: CA and certificates with openssl"
  rm -rf "$dir"; mkdir -p "$dir"; chmod 700 "$dir"
  openssl genrsa -out "$dir/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=ensemble-testbed-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$dir/ca.crt" 2>/dev/null
  local svc="kubernetes.default.svc"
  _leaf apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:$svc,DNS:$svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,IP:$NODE_IP"
  _leaf apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  _leaf admin "/O=system:masters/CN=testbed-admin" clientAuth
  _leaf controller-manager "/CN=system:kube-controller-manager" clientAuth
  _leaf scheduler "/CN=system:kube-scheduler" clientAuth
  _leaf kube-proxy "/CN=system:kube-proxy" clientAuth
  _leaf kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  _leaf kubelet-serving "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth \
    "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  touch "$dir/.complete"
}

# kubeconfig FILE SERVER CERT_NAME USER
_kubeconfig() {
  local pki="$RUN/pki"
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $4
  user:
    client-certificate-data: $(base64 -w0 "$pki/$3.crt")
    client-key-data: $(base64 -w0 "$pki/$3.key")
contexts:
- name: testbed
  context: {cluster: testbed, user: $4}
current-context: testbed
EOF
  chmod 600 "$1"
}

make_kubeconfigs() {
  local k="$RUN/kubeconfig" inside="https://127.0.0.1:6443"
  mkdir -p "$k"
  # For the host (through the loopback forwarder) and for the e2e tests.
  _kubeconfig "$RUN/kubeconfig.yaml" "https://127.0.0.1:$API_PORT" admin testbed-admin
  # For components and commands inside the namespace.
  _kubeconfig "$k/admin.yaml" "$inside" admin testbed-admin
  _kubeconfig "$k/controller-manager.yaml" "$inside" controller-manager system:kube-controller-manager
  _kubeconfig "$k/scheduler.yaml" "$inside" scheduler system:kube-scheduler
  _kubeconfig "$k/kube-proxy.yaml" "$inside" kube-proxy system:kube-proxy
  _kubeconfig "$k/kubelet.yaml" "$inside" kubelet-client "system:node:$NODE_NAME"
}
