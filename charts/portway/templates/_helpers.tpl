{{/* Names and labels shared by the chart's templates. */}}

{{- define "portway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name: "portway" for a release called portway, else "<release>-portway". */}}
{{- define "portway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portway.operatorName" -}}
{{- printf "%s-operator" (include "portway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portway.webhookServiceName" -}}
{{- printf "%s-webhook" (include "portway.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portway.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "portway.fullname" .) -}}
{{- end -}}

{{- define "portway.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Selects the operator pods (Deployment and webhook Service). */}}
{{- define "portway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of every object of the release, without a component. */}}
{{- define "portway.commonLabels" -}}
app.kubernetes.io/name: {{ include "portway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portway
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "portway.labels" -}}
{{ include "portway.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}
