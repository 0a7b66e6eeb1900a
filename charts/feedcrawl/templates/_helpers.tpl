{{/* The chart name, overridable. */}}
{{- define "feedcrawl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The resource name prefix: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "feedcrawl.fullname" -}}
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

{{- define "feedcrawl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart renders. */}}
{{- define "feedcrawl.commonLabels" -}}
helm.sh/chart: {{ include "feedcrawl.chart" . }}
app.kubernetes.io/name: {{ include "feedcrawl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: feedcrawl
{{- end }}

{{/* Labels of the operator and the objects that serve it (RBAC, Service). */}}
{{- define "feedcrawl.labels" -}}
{{ include "feedcrawl.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "feedcrawl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "feedcrawl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "feedcrawl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "feedcrawl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "feedcrawl.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The runner image: runner.image, or the operator's own image. */}}
{{- define "feedcrawl.runnerImage" -}}
{{- default (include "feedcrawl.image" .) .Values.runner.image }}
{{- end }}

{{/* Leader election: on with more than one replica, or when forced. */}}
{{- define "feedcrawl.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/*
The operator's rules, the same for the ClusterRole and for each per-namespace
Role. Every rule is explained in the chart README ("RBAC"). Keep the two in step:
test/chart/template.test.ts asserts these rules exactly.
*/}}
{{- define "feedcrawl.operatorRules" -}}
# Watch CrawlJobs; delete finished ones after spec.ttlSecondsAfterFinished.
# `get` is also granted to each runner by its per-job Role, which the operator must hold to create.
- apiGroups: ["feedcrawl.io"]
  resources: ["crawljobs"]
  verbs: ["get", "list", "watch", "delete"]
# Write CrawlJob status (phase, conditions, stats, feedSummary) with resourceVersion preconditions.
# `patch` is also what each runner's per-job Role grants.
- apiGroups: ["feedcrawl.io"]
  resources: ["crawljobs/status"]
  verbs: ["get", "update", "patch"]
# Held only because the per-job Role grants it to the runner (blockOwnerDeletion on its CrawlFeeds).
- apiGroups: ["feedcrawl.io"]
  resources: ["crawljobs/finalizers"]
  verbs: ["update"]
# CrawlSchedules: watch them and write their status (active runs, last schedule time).
- apiGroups: ["feedcrawl.io"]
  resources: ["crawlschedules"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["feedcrawl.io"]
  resources: ["crawlschedules/status"]
  verbs: ["get", "update", "patch"]
# Each scheduled run's CrawlJob (created with a blockOwnerDeletion ownerReference to its
# schedule: finalizers), suspended by concurrencyPolicy Replace (patch); pruned by the
# history limits (delete, above).
- apiGroups: ["feedcrawl.io"]
  resources: ["crawlschedules/finalizers"]
  verbs: ["update"]
- apiGroups: ["feedcrawl.io"]
  resources: ["crawljobs"]
  verbs: ["create", "patch"]
# Watch CrawlFeeds and remove the feedcrawl.io/redeliver annotation (patch).
# `create` is held only because the per-job Role grants it to the runner.
- apiGroups: ["feedcrawl.io"]
  resources: ["crawlfeeds"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Persist each feed's webhook delivery state machine.
- apiGroups: ["feedcrawl.io"]
  resources: ["crawlfeeds/status"]
  verbs: ["get", "update", "patch"]
# The spec snapshot it owns per CrawlJob, mounted into the runner pods
# (replaced with a resourceVersion precondition while no runner exists: update).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "get", "list", "watch", "patch", "update", "delete"]
# The runner's identity per CrawlJob.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# The runner's per-job Role and RoleBinding.
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# The runner's Indexed Job (create, follow, suspend, delete).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
# Read-only: the runner Jobs' pods (the operator's informer selects them by label), so a CrawlJob
# says why its runner does not run (ImagePullBackOff, Unschedulable, OOMKilled, exit 2).
# Never create/delete, never pods/log or pods/exec.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Check that referenced Secrets exist and hold the keys read (an informer: a Secret created after its
# CrawlJob starts it at once; the cache keeps key names only, never values), and read the webhook
# signing secret by name at send time.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Events on CrawlJobs and CrawlFeeds (both APIs: client libraries use either).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
