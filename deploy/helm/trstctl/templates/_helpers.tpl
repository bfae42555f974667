{{/* Names and labels shared by every template. */}}

{{- define "trstctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trstctl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "trstctl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trstctl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{- define "trstctl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "trstctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "trstctl.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "trstctl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trstctl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The names of the internal TLS certificate: the Service's, as pods call it, and any extra. */}}
{{- define "trstctl.tlsSANs" -}}
{{- $svc := include "trstctl.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.tls.clusterDomain) -}}
{{- join "," (concat $names .Values.tls.extraSANs) -}}
{{- end -}}

{{- define "trstctl.kekSecretName" -}}
{{- default (printf "%s-kek" (include "trstctl.fullname" .)) .Values.kek.existingSecret -}}
{{- end -}}

{{- define "trstctl.dbSecretName" -}}
{{- default (printf "%s-db" (include "trstctl.fullname" .)) .Values.postgres.existingSecret -}}
{{- end -}}

{{/* Inputs without which the server cannot start: fail at render time, not in CrashLoopBackOff. */}}
{{- define "trstctl.requiredInputs" -}}
{{- if and (not .Values.postgres.dsn) (not .Values.postgres.existingSecret) -}}
{{- fail "OPS-003: postgres.dsn or postgres.existingSecret is required. Set postgres.existingSecret to a Secret holding the libpq connection string." -}}
{{- end -}}
{{- if not .Values.nats.url -}}
{{- fail "OPS-003: nats.url is required. Point it at a NATS server with JetStream enabled." -}}
{{- end -}}
{{- if and (not .Values.kek.existingSecret) (not .Values.kek.generate) -}}
{{- fail "OPS-003: kek.existingSecret or kek.generate=true is required. Use kek.existingSecret for production; set kek.generate=true only for evaluation." -}}
{{- end -}}
{{- if not (has .Values.tls.mode (list "internal" "file" "disabled")) -}}
{{- fail (printf "tls.mode %q is invalid (want internal, file or disabled)" .Values.tls.mode) -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "file") (not .Values.tls.existingSecret) -}}
{{- fail "tls.mode=file requires tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if eq .Values.tls.mode "disabled" -}}
{{- fail "tls.mode=disabled is for a developer's loopback only; use internal or file in a cluster" -}}
{{- end -}}
{{- if and .Values.airGap.enabled .Values.telemetry.enabled -}}
{{- fail "telemetry.enabled must be false when air_gap.enabled is true" -}}
{{- end -}}
{{- end -}}
