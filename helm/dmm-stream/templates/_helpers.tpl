{{/*
The chart name (or nameOverride), at most 63 characters: Kubernetes names and label values
are limited to that.
*/}}
{{- define "dmm-stream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name: "<release>-<chart>", or just the release name when it already
contains the chart name; fullnameOverride replaces it. Truncated to 63 characters.
*/}}
{{- define "dmm-stream.fullname" -}}
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

{{/*
"<fullname>-<component>" for per-component objects; the full name is cut so that the suffix
always fits in 63 characters. Call with (dict "root" $ "component" "worker").
*/}}
{{- define "dmm-stream.componentName" -}}
{{- $suffix := printf "-%s" .component }}
{{- printf "%s%s" (include "dmm-stream.fullname" .root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "dmm-stream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "dmm-stream.labels" -}}
helm.sh/chart: {{ include "dmm-stream.chart" . }}
{{ include "dmm-stream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dmm-stream
{{- end }}

{{/* The labels that select this release's pods (stable across upgrades). */}}
{{- define "dmm-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dmm-stream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component (worker or trainer).
Call with (dict "root" $ "component" "worker").
*/}}
{{- define "dmm-stream.componentLabels" -}}
{{ include "dmm-stream.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dmm-stream.componentSelectorLabels" -}}
{{ include "dmm-stream.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "dmm-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dmm-stream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container image, "repository:tag" (tag defaults to the chart's appVersion). */}}
{{- define "dmm-stream.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret and key holding the signing key of model updates. */}}
{{- define "dmm-stream.signingKeySecretName" -}}
{{- default (printf "%s-signing-key" (include "dmm-stream.fullname" .)) .Values.signingKey.existingSecret }}
{{- end }}

{{/* The variable the service reads the signing key from (Settings.control.signing_key). */}}
{{- define "dmm-stream.signingKeyEnv" -}}
DMM_CONTROL_SIGNING_KEY
{{- end }}

{{/*
The environment of both containers: every setting from the ConfigMap, the secrets from
Secrets. Call with the root context.
*/}}
{{- define "dmm-stream.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "dmm-stream.fullname" . }}
env:
  - name: {{ include "dmm-stream.signingKeyEnv" . }}
    valueFrom:
      secretKeyRef:
        name: {{ include "dmm-stream.signingKeySecretName" . }}
        key: {{ .Values.signingKey.key }}
  {{- with .Values.kafka.saslPassword.existingSecret }}
  - name: DMM_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.kafka.saslPassword.key }}
  {{- end }}
{{- end }}

{{/*
Liveness, readiness and startup probes on the metrics port (service/health.py).
*/}}
{{- define "dmm-stream.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}

{{/*
Pod annotations that roll the pods when their configuration changes: the ConfigMap, and where
the signing key comes from (a generated key is kept across upgrades, so it is not hashed).
*/}}
{{- define "dmm-stream.configChecksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/signing-key: {{ toJson .Values.signingKey | sha256sum }}
{{- end }}

{{/*
Checks across values that values.schema.json cannot express; fails naming the keys.
*/}}
{{- define "dmm-stream.validateValues" -}}
{{- $messages := list }}
{{- $partitions := int .Values.topics.partitions }}
{{- if and (not .Values.autoscaling.enabled) (gt (int .Values.worker.replicas) $partitions) }}
{{- $messages = append $messages (printf "worker.replicas=%d is above topics.partitions=%d: a consumer group member without a partition gets no work; lower worker.replicas or add partitions" (int .Values.worker.replicas) $partitions) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.maxReplicas) $partitions }}
{{- $messages = append $messages (printf "autoscaling.maxReplicas=%d is above topics.partitions=%d: replicas beyond the partition count get no work; lower autoscaling.maxReplicas" (int .Values.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- $messages = append $messages (printf "autoscaling.minReplicas=%d is above autoscaling.maxReplicas=%d" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.saslUsername (not .Values.kafka.saslPassword.existingSecret) }}
{{- $messages = append $messages "kafka.saslUsername is set but kafka.saslPassword.existingSecret is empty: name the Secret that holds the SASL password" }}
{{- end }}
{{- if and .Values.signingKey.existingSecret .Values.signingKey.value }}
{{- $messages = append $messages "signingKey.existingSecret and signingKey.value are both set: reference a Secret or give the key, not both" }}
{{- end }}
{{- range $name, $_ := .Values.extraConfig }}
{{- if has $name (list "DMM_CONTROL_SIGNING_KEY" "DMM_KAFKA_SASL_PASSWORD") }}
{{- $messages = append $messages (printf "extraConfig.%s is a secret: use signingKey or kafka.saslPassword, which read it from a Secret" $name) }}
{{- end }}
{{- end }}
{{- if $messages }}
{{- fail (printf "\n\nVALUES VALIDATION:\n%s" (join "\n" $messages)) }}
{{- end }}
{{- end }}
