# Log-based metrics from the functions' structured log lines: each counts an `event` (lote/logs.py emit;
# a test checks every filter names an event the code emits, with the fields it filters on and labels
# by), and the alerts on them. The dashboard is in dashboard.tf, the SLOs in slos.tf.

locals {
  worker_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=\"${google_cloudfunctions2_function.fn["worker"].name}\"",
  ])
  # Every function's lines (Firestore contention answers 429 in the api as in the worker).
  lote_logs = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for f in google_cloudfunctions2_function.fn : "\"${f.name}\""])})",
  ])
  # PromQL names of the log-based metrics: "logging.googleapis.com/user/NAME" with the first / as :
  # and every other special character (the prefix may hold hyphens) as _ (Cloud Monitoring's mapping).
  # A distribution is queried as a Prometheus histogram: NAME_bucket, NAME_sum, NAME_count.
  promql = {
    for key, name in merge({
      failed              = google_logging_metric.failed.name
      succeeded           = google_logging_metric.succeeded.name
      audit_violations    = google_logging_metric.audit_violations.name
      abandoned           = google_logging_metric.abandoned.name
      breaker_opened      = google_logging_metric.breaker_opened.name
      model_blocked       = google_logging_metric.model_blocked.name
      stripe_unsettled    = google_logging_metric.stripe_unsettled.name
      model_throttled     = google_logging_metric.model_throttled.name
      accept_to_done      = google_logging_metric.accept_to_done.name
      waited              = google_logging_metric.waited.name
      images_on_time      = google_logging_metric.images_on_time.name
      images_late         = google_logging_metric.images_late.name
      model_spend         = google_logging_metric.model_spend.name
      webhooks_failed     = google_logging_metric.webhooks_failed.name
      webhook_lag         = google_logging_metric.webhook_lag.name
      webhooks_on_time    = google_logging_metric.webhooks_on_time.name
      webhooks_late       = google_logging_metric.webhooks_late.name
      firestore_contended = google_logging_metric.firestore_contended.name
    }, { for field, metric in google_logging_metric.tick : "tick_${field}" => metric.name }) :
    key => "logging_googleapis_com:user_${replace(name, "/[^A-Za-z0-9_]/", "_")}"
  }
  # Labels a metric takes from its lines' fields (label_extractors); each a STRING.
  labels = {
    tier = "the image's tier: interactive (a single), express, standard, economy"
    kind = "single or item (of a batch)"
    code = "the error's code"
    end  = "how the attempt ended: held (image quota) or deferred (text quota)"
  }
}

resource "google_logging_metric" "succeeded" {
  name             = "${local.p}_images_succeeded"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.succeeded\""
  label_extractors = { for key in ["tier", "kind"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    dynamic "labels" {
      for_each = ["tier", "kind"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
}

resource "google_logging_metric" "failed" {
  name             = "${local.p}_images_failed"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.failed\""
  label_extractors = { for key in ["tier", "kind", "code"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    dynamic "labels" {
      for_each = ["tier", "kind", "code"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
}

# A model call refused for quota (429 RESOURCE_EXHAUSTED, clients/model.py ModelThrottled): the job is
# held again (image) or deferred (text), its attempt not counted (jobs/outcome.py).
resource "google_logging_metric" "model_throttled" {
  name             = "${local.p}_model_throttled"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.settled\" AND jsonPayload.code=\"model_rate_limited\""
  label_extractors = { for key in ["tier", "end"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    dynamic "labels" {
      for_each = ["tier", "end"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
}

# Acceptance to success (jobs/worker.py `accept_to_done_ms`), singles and batch items by tier.
resource "google_logging_metric" "accept_to_done" {
  name             = "${local.p}_accept_to_done"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.succeeded\" AND jsonPayload.accept_to_done_ms>0"
  value_extractor  = "EXTRACT(jsonPayload.accept_to_done_ms)"
  label_extractors = { for key in ["tier", "kind"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    dynamic "labels" {
      for_each = ["tier", "kind"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
  bucket_options {
    exponential_buckets { # 0.5 s to about two weeks
      num_finite_buckets = 44
      growth_factor      = 1.4
      scale              = 500
    }
  }
}

# Acceptance to the first attempt (`waited_ms`) of the jobs that ended: held work's age when it left
# its lane, by tier; what is still held is the tick's `oldest_held_s_{tier}` (the oldest active lane).
resource "google_logging_metric" "waited" {
  name             = "${local.p}_waited"
  filter           = "${local.worker_logs} AND jsonPayload.event=(\"job.succeeded\" OR \"job.failed\") AND jsonPayload.waited_ms>0"
  value_extractor  = "EXTRACT(jsonPayload.waited_ms)"
  label_extractors = { for key in ["tier", "kind"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
    dynamic "labels" {
      for_each = ["tier", "kind"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 44
      growth_factor      = 1.4
      scale              = 500
    }
  }
}

# The SLOs' images (slos.tf): ended for good within their tier's target (jobs/worker.py TARGET_S), or
# not (late, or failed for a reason retries could not mend; a failure that is the request's own, not
# retryable, carries no `within_target` and is not judged).
resource "google_logging_metric" "images_on_time" {
  name             = "${local.p}_images_on_time"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.succeeded\" AND jsonPayload.within_target=true"
  label_extractors = { for key in ["tier", "kind"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    dynamic "labels" {
      for_each = ["tier", "kind"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
}

resource "google_logging_metric" "images_late" {
  name             = "${local.p}_images_late"
  filter           = "${local.worker_logs} AND jsonPayload.event=(\"job.succeeded\" OR \"job.failed\") AND jsonPayload.within_target=false"
  label_extractors = { for key in ["tier", "kind"] : key => "EXTRACT(jsonPayload.${key})" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    dynamic "labels" {
      for_each = ["tier", "kind"]
      content {
        key         = labels.value
        value_type  = "STRING"
        description = local.labels[labels.value]
      }
    }
  }
}

# What a success's model calls cost lote (`model_cost_usd_micros`: Gemini's tokens at
# dispatch/model_prices.json's prices, batch mode's share for economy): the dashboard sums it.
resource "google_logging_metric" "model_spend" {
  name             = "${local.p}_model_spend"
  filter           = "${local.worker_logs} AND jsonPayload.event=\"job.succeeded\" AND jsonPayload.model_cost_usd_micros>0"
  value_extractor  = "EXTRACT(jsonPayload.model_cost_usd_micros)"
  label_extractors = { tier = "EXTRACT(jsonPayload.tier)" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key         = "tier"
      value_type  = "STRING"
      description = local.labels.tier
    }
  }
  bucket_options {
    exponential_buckets { # 100 micros ($0.0001) to about $50
      num_finite_buckets = 20
      growth_factor      = 2
      scale              = 100
    }
  }
}

# The dispatcher's gauges, one `dispatch.tick` line per control window (lote/dispatch/service.py):
# each field a distribution the dashboard averages per minute.
locals {
  tick_fields = {
    backlog                   = { unit = "1", scale = 1, growth = 2, buckets = 24, about = "released jobs not started and active lanes" }
    in_queue                  = { unit = "1", scale = 1, growth = 2, buckets = 24, about = "released jobs not started" }
    lanes_interactive         = { unit = "1", scale = 1, growth = 2, buckets = 20, about = "active lanes of singles held again" }
    lanes_express             = { unit = "1", scale = 1, growth = 2, buckets = 20, about = "active express lanes (batches)" }
    lanes_standard            = { unit = "1", scale = 1, growth = 2, buckets = 20, about = "active standard lanes (batches)" }
    lanes_economy             = { unit = "1", scale = 1, growth = 2, buckets = 20, about = "active economy lanes (batches)" }
    pace_share                = { unit = "1", scale = 0.01, growth = 1.25, buckets = 24, about = "the pace's share of the queue's ceiling" }
    quota_error_share         = { unit = "1", scale = 0.001, growth = 1.4, buckets = 24, about = "the window's calls refused for quota" }
    breaker_level             = { unit = "1", scale = 0.5, growth = 2, buckets = 3, about = "0 closed, 1 open, 2 blocked" }
    oldest_held_s_interactive = { unit = "s", scale = 1, growth = 2, buckets = 20, about = "age of the oldest active lane of singles held again" }
    oldest_held_s_express     = { unit = "s", scale = 1, growth = 2, buckets = 20, about = "age of the oldest active express lane" }
    oldest_held_s_standard    = { unit = "s", scale = 1, growth = 2, buckets = 20, about = "age of the oldest active standard lane" }
    oldest_held_s_economy     = { unit = "s", scale = 1, growth = 2, buckets = 20, about = "age of the oldest active economy lane" }
  }
}

resource "google_logging_metric" "tick" {
  for_each        = local.tick_fields
  name            = "${local.p}_dispatch_${each.key}"
  description     = "Dispatcher tick: ${each.value.about}."
  filter          = "${local.worker_logs} AND jsonPayload.event=\"dispatch.tick\""
  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = each.value.unit
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = each.value.buckets
      growth_factor      = each.value.growth
      scale              = each.value.scale
    }
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

# Webhook deliveries (lote/webhooks/delivery.py): event → acknowledged (`lag_ms`), and the webhook
# SLO's good (acknowledged within its target) and bad (late, or failed for good).
resource "google_logging_metric" "webhook_lag" {
  name            = "${local.p}_webhook_lag"
  filter          = "${local.worker_logs} AND jsonPayload.event=\"webhook.delivered\" AND jsonPayload.lag_ms>0"
  value_extractor = "EXTRACT(jsonPayload.lag_ms)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "ms"
  }
  bucket_options {
    exponential_buckets { # 50 ms to about a day
      num_finite_buckets = 36
      growth_factor      = 1.5
      scale              = 50
    }
  }
}

resource "google_logging_metric" "webhooks_on_time" {
  name   = "${local.p}_webhooks_on_time"
  filter = "${local.worker_logs} AND jsonPayload.event=\"webhook.delivered\" AND jsonPayload.within_target=true"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_logging_metric" "webhooks_late" {
  name   = "${local.p}_webhooks_late"
  filter = "${local.worker_logs} AND jsonPayload.event=(\"webhook.delivered\" OR \"webhook.failed\") AND jsonPayload.within_target=false"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

# A Firestore transaction or optimistic commit that lost every retry and answered 429
# (lote/transactions.py), in any function.
resource "google_logging_metric" "firestore_contended" {
  name             = "${local.p}_firestore_contended"
  filter           = "${local.lote_logs} AND jsonPayload.event=\"firestore.contention\""
  label_extractors = { kind = "EXTRACT(jsonPayload.kind)" }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key         = "kind"
      value_type  = "STRING"
      description = "transaction or optimistic (a preconditioned batch)"
    }
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
