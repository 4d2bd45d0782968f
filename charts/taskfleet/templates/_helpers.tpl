{{/* The chart's name, or nameOverride. */}}
{{- define "taskfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-taskfleet, or just <release> when it already says taskfleet; fullnameOverride wins. */}}
{{- define "taskfleet.fullname" -}}
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

{{/* The name of the operator's Deployment, ClusterRole, bindings: <fullname>-operator. */}}
{{- define "taskfleet.operator" -}}
{{- printf "%s-operator" (include "taskfleet.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "taskfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskfleet.operator" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount to run the operator as (serviceAccount.create is false)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "taskfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What selects the operator's pods. Never change these: a Deployment's selector is immutable. */}}
{{- define "taskfleet.selectorLabels" -}}
app.kubernetes.io/name: taskfleet-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of everything the chart makes. */}}
{{- define "taskfleet.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: taskfleet
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "taskfleet.chart" . }}
{{- end }}

{{/* Labels of the operator's objects. */}}
{{- define "taskfleet.labels" -}}
app.kubernetes.io/name: taskfleet-operator
app.kubernetes.io/component: operator
{{ include "taskfleet.commonLabels" . }}
{{- end }}

{{- define "taskfleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's RBAC rules, from the one source the tests use too. */}}
{{- define "taskfleet.rbacRules" -}}
{{- $rules := .Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- if or (hasKey $rules "Error") (not $rules.namespaceRules) (not $rules.secretRules) (not $rules.leaderElectionRules) }}
{{- fail "files/rbac-rules.yaml must hold namespaceRules, secretRules and leaderElectionRules" }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/* The rules of the operator's role where it watches TaskQueues: namespaceRules, plus secretRules when it may read Secrets. */}}
{{- define "taskfleet.watchedNamespaceRules" -}}
{{- $rules := include "taskfleet.rbacRules" . | fromYaml }}
{{- $watched := $rules.namespaceRules }}
{{- if .Values.secrets.read }}
{{- $watched = concat $watched $rules.secretRules }}
{{- end }}
{{- toYaml $watched }}
{{- end }}

{{/* The username the API server gives the operator's ServiceAccount, as admission policies match it. */}}
{{- define "taskfleet.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "taskfleet.serviceAccountName" .) }}
{{- end }}

{{/* The admission policy bindings' validationActions, as JSON; Deny and Warn together is refused as the API server would. */}}
{{- define "taskfleet.validationActions" -}}
{{- $actions := .Values.admissionPolicies.validationActions }}
{{- if and (has "Deny" $actions) (has "Warn" $actions) }}
{{- fail "admissionPolicies.validationActions: Deny and Warn cannot be set together (a refused request shows no warning): use [Deny], or [Warn] and/or [Audit] to only report violations" }}
{{- end }}
{{- toJson $actions }}
{{- end }}

{{/*
Values this chart's templates read that an older chart did not have. `helm upgrade --reuse-values` keeps
the old chart's defaults, so they would be missing and a template would fail on a nil value: say why.
*/}}
{{- define "taskfleet.checkValues" -}}
{{- $missing := list }}
{{- range $key := list "secrets" "admissionPolicies" "networkPolicy" "podDisruptionBudget" }}
{{- if not (hasKey $.Values $key) }}{{ $missing = append $missing $key }}{{ end }}
{{- end }}
{{- if not (hasKey .Values.rbac "aggregateToEdit") }}{{ $missing = append $missing "rbac.aggregateToEdit" }}{{ end }}
{{- if $missing }}
{{- fail (printf "the values have no %s: they come from an older Taskfleet chart (helm upgrade --reuse-values keeps the old chart's defaults). Upgrade with --reset-then-reuse-values, or pass your values file again with -f" (join ", " $missing)) }}
{{- end }}
{{- end }}
