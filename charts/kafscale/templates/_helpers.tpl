{{/* Names, labels and the addresses every template agrees on. */}}

{{- define "kafscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, shortened so "<fullname>-etcd-headless" and pod names stay DNS labels. */}}
{{- define "kafscale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kafscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kafscale.labels" -}}
helm.sh/chart: {{ include "kafscale.chart" . }}
app.kubernetes.io/name: {{ include "kafscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafscale
{{- end }}

{{/* Selector labels of one component: include "kafscale.selectorLabels" (list . "broker") */}}
{{- define "kafscale.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "kafscale.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "kafscale.brokerName" -}}{{ include "kafscale.fullname" . }}{{- end }}
{{- define "kafscale.brokerHeadless" -}}{{ include "kafscale.fullname" . }}-headless{{- end }}
{{- define "kafscale.minioName" -}}{{ include "kafscale.fullname" . }}-minio{{- end }}
{{- define "kafscale.etcdName" -}}{{ include "kafscale.fullname" . }}-etcd{{- end }}
{{- define "kafscale.etcdHeadless" -}}{{ include "kafscale.fullname" . }}-etcd-headless{{- end }}

{{- define "kafscale.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the S3 access and secret keys. */}}
{{- define "kafscale.s3SecretName" -}}
{{- if .Values.s3.existingSecret }}{{ .Values.s3.existingSecret }}{{ else }}{{ include "kafscale.fullname" . }}-s3{{ end }}
{{- end }}

{{/* S3 endpoint URL the brokers use: the external one, or the chart's MinIO Service. */}}
{{- define "kafscale.s3Endpoint" -}}
{{- if .Values.s3.external }}
{{- required "s3.external is true: set s3.endpoint to the URL of your S3 service (e.g. http://minio.storage:9000)" .Values.s3.endpoint }}
{{- else }}
{{- printf "%s://%s.%s.svc.%s:9000" (ternary "https" "http" .Values.minio.tls.enabled) (include "kafscale.minioName" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}
{{- end }}

{{/* etcd client endpoints (host:port, comma separated): the external ones, or each member of the chart's etcd. */}}
{{- define "kafscale.etcdEndpoints" -}}
{{- if .Values.etcd.external }}
{{- if not .Values.etcd.endpoints }}
{{- fail "etcd.external is true: set etcd.endpoints to your etcd client endpoints (host:port, a list)" }}
{{- end }}
{{- join "," .Values.etcd.endpoints }}
{{- else }}
{{- $eps := list }}
{{- range $i := until (int .Values.etcd.replicas) }}
{{- $eps = append $eps (printf "%s%s-%d.%s.%s.svc.%s:2379" (ternary "https://" "" $.Values.etcd.tls.enabled) (include "kafscale.etcdName" $) $i (include "kafscale.etcdHeadless" $) $.Release.Namespace $.Values.clusterDomain) }}
{{- end }}
{{- join "," $eps }}
{{- end }}
{{- end }}

{{/* etcd's --initial-cluster: every member's peer URL. */}}
{{- define "kafscale.etcdInitialCluster" -}}
{{- $members := list }}
{{- range $i := until (int .Values.etcd.replicas) }}
{{- $name := printf "%s-%d" (include "kafscale.etcdName" $) $i }}
{{- $members = append $members (printf "%s=%s://%s.%s.%s.svc.%s:2380" $name (ternary "https" "http" $.Values.etcd.tls.enabled) $name (include "kafscale.etcdHeadless" $) $.Release.Namespace $.Values.clusterDomain) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{- define "kafscale.bootstrap" -}}
{{- printf "%s.%s.svc.%s:%d" (include "kafscale.brokerName" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) }}
{{- end }}

{{/* The Secret holding the web console's credentials (console.auth). */}}
{{- define "kafscale.consoleSecretName" -}}
{{- .Values.console.auth.existingSecret | default (printf "%s-console" (include "kafscale.fullname" .)) -}}
{{- end }}

{{/* The Secret holding the TLS listener's certificate, key and CA (tls). */}}
{{- define "kafscale.tlsSecretName" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "kafscale.fullname" .)) }}
{{- end }}

{{/* The Secret holding the SASL admin user's password (sasl). */}}
{{- define "kafscale.saslSecretName" -}}
{{- .Values.sasl.existingSecret | default (printf "%s-sasl" (include "kafscale.fullname" .)) -}}
{{- end }}

{{/* Whether any listener uses SASL. */}}
{{- define "kafscale.saslOn" -}}
{{- if or .Values.sasl.plaintext (and .Values.tls.enabled (eq .Values.tls.protocol "SASL_SSL")) }}true{{ end -}}
{{- end }}

{{/* The brokers' ServiceAccount. */}}
{{- define "kafscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ .Values.serviceAccount.name | default (include "kafscale.fullname" .) }}{{ else }}{{ .Values.serviceAccount.name | default "default" }}{{ end }}
{{- end }}

{{/* Secrets of the secured etcd and MinIO (docs/security.md, "etcd and S3"). */}}
{{- define "kafscale.etcdTlsSecretName" -}}
{{- .Values.etcd.tls.existingSecret | default (printf "%s-etcd-tls" (include "kafscale.fullname" .)) }}
{{- end }}
{{- define "kafscale.etcdClientTlsSecretName" -}}
{{- .Values.etcd.tls.clientSecret | default (printf "%s-etcd-client-tls" (include "kafscale.fullname" .)) }}
{{- end }}
{{- define "kafscale.etcdAuthSecretName" -}}
{{- .Values.etcd.auth.existingSecret | default (printf "%s-etcd-auth" (include "kafscale.fullname" .)) }}
{{- end }}
{{- define "kafscale.minioTlsSecretName" -}}
{{- .Values.minio.tls.existingSecret | default (printf "%s-minio-tls" (include "kafscale.fullname" .)) }}
{{- end }}
{{/* The Secret and key of the CA the brokers check S3's certificate against; empty: the system's. */}}
{{- define "kafscale.s3CaSecret" -}}
{{- if and (not .Values.s3.external) .Values.minio.tls.enabled }}{{ include "kafscale.minioTlsSecretName" . }}{{ else if .Values.s3.external }}{{ .Values.s3.caSecret }}{{ end }}
{{- end }}
{{- define "kafscale.s3CaSecretKey" -}}
{{- if .Values.s3.external }}{{ .Values.s3.caSecretKey }}{{ else }}ca.crt{{ end }}
{{- end }}
