{{- define "hermes-drain-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "hermes-drain-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{- define "hermes-drain-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hermes-drain-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hermes-drain-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hermes-drain-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hermes-drain-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hermes-drain-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
A Prometheus duration of days, hours, minutes and seconds ("1h30m") in
seconds, for an expression that compares it with a timestamp (Prometheus
reads a duration as a number only from 3.0 on).
*/}}
{{- define "hermes-drain-operator.seconds" -}}
{{- $seconds := 0 -}}
{{- range regexFindAll "[0-9]+[dhms]" . -1 -}}
{{- $unit := get (dict "d" 86400 "h" 3600 "m" 60 "s" 1) (trimAll "0123456789" .) -}}
{{- $seconds = add $seconds (mul (trimAll "dhms" .) $unit) -}}
{{- end -}}
{{- $seconds -}}
{{- end }}
