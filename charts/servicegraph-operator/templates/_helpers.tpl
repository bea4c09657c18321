{{/*
The prefix of every object's name. A release whose name contains "servicegraph" (say
`helm install servicegraph`) uses its name as is, so its objects are named exactly as
config/default names them (servicegraph-controller-manager, ...).
*/}}
{{- define "servicegraph.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "servicegraph" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-servicegraph" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "servicegraph.serviceAccountName" -}}
{{- printf "%s-controller-manager" (include "servicegraph.fullname" .) -}}
{{- end -}}

{{/* Labels Helm adds on top of config/default's (the chart test strips exactly these). */}}
{{- define "servicegraph.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "servicegraph.labels" -}}
{{ include "servicegraph.helmLabels" . }}
{{- end -}}

{{/* The pod selector, the same as config/manager's. */}}
{{- define "servicegraph.selector" -}}
control-plane: controller-manager
{{- end -}}

{{/* The port of a bind address such as ":8443" or "127.0.0.1:8081". */}}
{{- define "servicegraph.port" -}}
{{- splitList ":" . | last | int -}}
{{- end -}}

{{/*
The manager's arguments: every flag of values.flags whose value is not empty, as --name=value in
the order of the names (an empty value leaves the binary's own default), then extraArgs.
*/}}
{{- define "servicegraph.args" -}}
{{- range $name, $value := .Values.flags }}
{{- if kindIs "float64" $value }}{{ $value = int64 $value }}{{ end }}
{{- if ne (toString $value) "" }}
- {{ printf "--%s=%v" $name $value | quote }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
