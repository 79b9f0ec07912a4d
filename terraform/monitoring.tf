# Log-based metrics from the worker's structured log lines: each counts an `event` (lote/logs.py emit;
# a test checks every filter names an event the code emits, with the fields it filters on) and two alerts.

locals {
  worker_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloudfunctions2_function.fn["worker"].name}\"",
  ])
  # PromQL names of the log-based metrics: "logging.googleapis.com/user/NAME" with the first / as :
  # and every other special character (the prefix may hold hyphens) as _ (Cloud Monitoring's mapping).
  promql = {
    for key, name in {
      failed           = google_logging_metric.failed.name
      succeeded        = google_logging_metric.succeeded.name
      audit_violations = google_logging_metric.audit_violations.name
      abandoned        = google_logging_metric.abandoned.name
      breaker_opened   = google_logging_metric.breaker_opened.name
      model_blocked    = google_logging_metric.model_blocked.name
      stripe_unsettled = google_logging_metric.stripe_unsettled.name
    } : key => "logging_googleapis_com:user_${replace(name, "/[^A-Za-z0-9_]/", "_")}"
  }
}

resource "google_logging_metric" "succeeded" {
  name   = "${local.p}_images_succeeded"
  filter = "${local.worker_logs} AND jsonPayload.event=\"job.succeeded\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "failed" {
  name   = "${local.p}_images_failed"
  filter = "${local.worker_logs} AND jsonPayload.event=\"job.failed\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "model_latency" {
  name            = "${local.p}_model_latency"
  filter          = "${google_logging_metric.succeeded.filter} AND jsonPayload.model_ms>0"
  value_extractor = "EXTRACT(jsonPayload.model_ms)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.4
      scale              = 50
    }
  }
}

resource "google_logging_metric" "webhooks_failed" {
  name   = "${local.p}_webhooks_failed"
  filter = "${local.worker_logs} AND jsonPayload.event=\"webhook.failed\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# The repair sweep's audit sample (lote/audit/scan.py) logs one line per broken invariant, and the
# sweep one line per job it had to abandon: either means an image or a credit needs a human.
resource "google_logging_metric" "audit_violations" {
  name   = "${local.p}_audit_violations"
  filter = "${local.worker_logs} AND jsonPayload.event=\"audit.violation\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "abandoned" {
  name   = "${local.p}_jobs_abandoned"
  filter = "${local.worker_logs} AND jsonPayload.event=\"job.abandoned\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# The dispatcher's breaker (lote/dispatch/service.py): the model fails broadly and only probes go out.
resource "google_logging_metric" "breaker_opened" {
  name   = "${local.p}_breaker_opened"
  filter = "${local.worker_logs} AND jsonPayload.event=\"dispatch.breaker\" AND jsonPayload.state=\"open\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# The deployment cannot use the model (lote/clients/model.py's operator trouble: a bad or expired key,
# the API or billing disabled, a permission, the model not served here, the day's quota spent).
resource "google_logging_metric" "model_blocked" {
  name   = "${local.p}_model_blocked"
  filter = "${local.worker_logs} AND jsonPayload.event=\"dispatch.breaker\" AND jsonPayload.state=\"blocked\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# The Stripe reconciliation (lote/billing/reconcile.py): money taken that it could not match to credits
# (an unknown tenant), or the reverse.
resource "google_logging_metric" "stripe_unsettled" {
  name   = "${local.p}_stripe_unsettled"
  filter = "${local.worker_logs} AND jsonPayload.event=\"stripe.unsettled\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_notification_channel" "email" {
  display_name = "lote alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
  depends_on = [google_project_service.api]
}

resource "google_monitoring_alert_policy" "failure_ratio" {
  display_name = "lote: share of failed images above ${var.failure_ratio_threshold}"
  combiner     = "OR"
  conditions {
    display_name = "failed / finished over 15 min"
    condition_prometheus_query_language {
      # `or vector(0)`: a log-based metric has no series until its first line, and an empty term
      # would make the whole expression empty (a total outage has no successes at all).
      query = join("", [
        "sum(rate(${local.promql.failed}[15m])) / ",
        "(sum(rate(${local.promql.failed}[15m])) + ",
        "(sum(rate(${local.promql.succeeded}[15m])) or vector(0))) ",
        "> ${var.failure_ratio_threshold}",
      ])
      duration            = "300s"
      evaluation_interval = "60s"
    }
  }
  notification_channels = [google_monitoring_notification_channel.email.id]
}

# Cloud Tasks exports no "oldest task age"; task_attempt_delays (time between a task's schedule
# time and its attempt) is the same signal: a task attempted late waited that long in the queue.
resource "google_monitoring_alert_policy" "queue_delay" {
  display_name = "lote: tasks waiting more than ${var.queue_delay_threshold_s} s"
  combiner     = "OR"
  conditions {
    display_name = "p99 attempt delay per queue"
    condition_threshold {
      filter          = "resource.type = \"cloud_tasks_queue\" AND metric.type = \"cloudtasks.googleapis.com/queue/task_attempt_delays\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.queue_delay_threshold_s * 1000
      duration        = "300s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_PERCENTILE_99"
        cross_series_reducer = "REDUCE_MAX"
        group_by_fields      = ["resource.label.queue_id"]
      }
    }
  }
  notification_channels = [google_monitoring_notification_channel.email.id]
}

resource "google_monitoring_alert_policy" "invariants" {
  display_name = "lote: an invariant is broken or a job was abandoned"
  combiner     = "OR"
  conditions {
    # One condition each: a sum of the two would be empty while either metric has no series yet.
    display_name = "audit violations in 10 min"
    condition_prometheus_query_language {
      query               = "sum(increase(${local.promql.audit_violations}[10m])) > 0"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }
  conditions {
    display_name = "abandoned jobs in 10 min"
    condition_prometheus_query_language {
      query               = "sum(increase(${local.promql.abandoned}[10m])) > 0"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }
  documentation {
    content   = "Run `lote-admin audit` (or read the worker's `lote.audit invariant violated` lines): each names the invariant, the job or batch and the tenant."
    mime_type = "text/markdown"
  }
  notification_channels = [google_monitoring_notification_channel.email.id]
}

# Alerts on any line of a log-based metric within a window: each says what happened and what to do.
locals {
  line_alerts = {
    breaker = {
      title  = "lote: the model is failing broadly (dispatch breaker open)"
      when   = "breaker opened in 5 min"
      metric = local.promql.breaker_opened
      window = "5m"
      every  = "60s"
      doc    = "Most first calls to the model failed (5xx, timeouts). Work waits held and one probe goes out every 5 s; `GET /v1/admin/scheduler` shows the breaker and the backlog. It closes by itself once probes succeed."
    }
    model_blocked = {
      title  = "lote: the model refuses this deployment (dispatch blocked: key, billing, quota)"
      when   = "dispatch blocked in 5 min"
      metric = local.promql.model_blocked
      window = "5m"
      every  = "60s"
      doc    = "The model answered that this deployment cannot use it: the worker's `breaker blocked (CODE)` line and `GET /v1/admin/scheduler` (`blocked_reason`) say why: `model_key_invalid` (renew GEMINI_API_KEY), `model_access_denied` (enable the API, billing, the service account's role), `model_not_available` (the model or region), `model_quota_per_day` or `model_quota_exhausted` (raise the quota or wait for the day to turn). No image fails or is refunded meanwhile; work waits held and one probe a minute goes out; dispatch resumes by itself when one passes."
    }
    stripe_unsettled = {
      title  = "lote: a Stripe payment, refund or dispute could not be settled in credits"
      when   = "unsettled in an hour"
      metric = local.promql.stripe_unsettled
      window = "1h"
      every  = "300s"
      doc    = "The worker's `stripe reconcile: unsettled KIND ID: OUTCOME` lines name the Stripe object: e.g. a paid Checkout Session for a tenant that does not exist (grant by hand with `lote-admin grant-credits`, or refund it in Stripe). `lote-admin reconcile` runs the same pass on demand."
    }
  }
}

resource "google_monitoring_alert_policy" "line" {
  for_each     = local.line_alerts
  display_name = each.value.title
  combiner     = "OR"
  conditions {
    display_name = each.value.when
    condition_prometheus_query_language {
      query               = "sum(increase(${each.value.metric}[${each.value.window}])) > 0"
      duration            = "0s"
      evaluation_interval = each.value.every
    }
  }
  documentation {
    content   = each.value.doc
    mime_type = "text/markdown"
  }
  notification_channels = [google_monitoring_notification_channel.email.id]
}

moved {
  from = google_monitoring_alert_policy.breaker
  to   = google_monitoring_alert_policy.line["breaker"]
}
