{{/* Chart name, overridable with nameOverride. */}}
{{- define "ensemble-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, or the release name when it already contains the
chart name, or "<release>-<chart>". Truncated to 63 characters, the limit of a DNS label.
*/}}
{{- define "ensemble-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ensemble-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. The operator's pods are told apart from ensemble members by
app.kubernetes.io/name (members carry "ensemble").
*/}}
{{- define "ensemble-operator.labels" -}}
helm.sh/chart: {{ include "ensemble-operator.chart" . }}
{{ include "ensemble-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ensemble
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods; never change them, a Deployment selector is immutable. */}}
{{- define "ensemble-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ensemble-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ensemble-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ensemble-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's image; also the default image of ensemble members. */}}
{{- define "ensemble-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "ensemble-operator.leaseName" -}}
{{- default (include "ensemble-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
RBAC rules for reconciling CoordinationClusters: everything the operator does, and nothing more,
except the CRD rule (cluster-scoped, below) and the leader-election lease (role-leader-election.yaml).
Granted by a ClusterRole, or by a Role in each of watchNamespaces.
*/}}
{{- define "ensemble-operator.reconcileRules" -}}
# The reconcile input; the operator reads clusters but never writes their spec.
- apiGroups: ["ensemble.dev"]
  resources: ["coordinationclusters"]
  verbs: ["get", "list", "watch"]
# Status is written by server-side apply (a patch) under the operator's field manager.
- apiGroups: ["ensemble.dev"]
  resources: ["coordinationclusters/status"]
  verbs: ["get", "patch"]
# Children carry a controller owner reference with blockOwnerDeletion, which API servers that
# enforce owner-reference permissions only allow to those who may update the owner's finalizers.
- apiGroups: ["ensemble.dev"]
  resources: ["coordinationclusters/finalizers"]
  verbs: ["update"]
# Each cluster's member StatefulSet: created and updated by server-side apply, watched as an owned child.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Client and headless peer Services, the server ConfigMap and the admin-token Secret: server-side
# apply, watched as owned children.
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The PodDisruptionBudget that keeps a node drain from taking quorum: server-side apply, watched.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Member pods are observed for readiness; a rolling restart deletes one pod at a time, because the
# StatefulSet uses the OnDelete update strategy; a pod whose member is to leave is labelled out
# of the client Service first (a server-side apply patch).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Member data volumes: observed; grown by a server-side apply patch when storage.size increases
# (a StatefulSet's claim template is immutable); deleted on scale-down when reclaimPolicy is Delete.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# A Kubernetes event for each step the operator takes, so `kubectl describe cc` tells the story.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The one cluster-scoped rule that is needed even when only some namespaces are watched. */}}
{{- define "ensemble-operator.crdRule" -}}
# The operator waits for its own CRD to be served instead of crashing; it may read no other CRD.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  resourceNames: ["coordinationclusters.ensemble.dev"]
  verbs: ["get"]
{{- end }}

{{/* Fails the render on value combinations the schema cannot express clearly. */}}
{{- define "ensemble-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 requires leaderElection.enabled=true: two active operators would fight over the same clusters" }}
{{- end }}
{{- end }}
