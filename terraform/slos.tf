# Service-level objectives of lote, request-based on the log-based metrics of monitoring.tf (good / bad
# counts), each with burn-rate alerts. Targets and goals are our guesses: decision note
# docs/decisions/2026-12-05-dashboard-slos-budget.md.

resource "google_monitoring_custom_service" "lote" {
  service_id   = "${local.p}-images"
  display_name = "lote (${local.p}): images and webhooks"
  depends_on   = [google_project_service.api]
}

locals {
  metric = {
    for key, metric in {
      images_on_time   = google_logging_metric.images_on_time
      images_late      = google_logging_metric.images_late
      webhooks_on_time = google_logging_metric.webhooks_on_time
      webhooks_late    = google_logging_metric.webhooks_late
    } : key => "metric.type=\"logging.googleapis.com/user/${metric.name}\" AND resource.type=\"cloud_run_revision\""
  }
  slos = {
    singles = {
      title = "Single generations done within their target (jobs/worker.py TARGET_S interactive)"
      goal  = var.slo_goals.singles
      good  = "${local.metric.images_on_time} AND metric.labels.kind=\"single\""
      bad   = "${local.metric.images_late} AND metric.labels.kind=\"single\""
    }
    items = {
      title = "Batch items done within their tier's deadline (jobs/worker.py TARGET_S)"
      goal  = var.slo_goals.items
      good  = "${local.metric.images_on_time} AND metric.labels.kind=\"item\""
      bad   = "${local.metric.images_late} AND metric.labels.kind=\"item\""
    }
    webhooks = {
      title = "Webhook deliveries acknowledged within a minute of their event (webhooks/delivery.py LAG_TARGET_S)"
      goal  = var.slo_goals.webhooks
      good  = local.metric.webhooks_on_time
      bad   = local.metric.webhooks_late
    }
  }
}

resource "google_monitoring_slo" "slo" {
  for_each            = local.slos
  service             = google_monitoring_custom_service.lote.service_id
  slo_id              = each.key
  display_name        = each.value.title
  goal                = each.value.goal
  rolling_period_days = 30
  request_based_sli {
    good_total_ratio {
      good_service_filter = each.value.good
      bad_service_filter  = each.value.bad
    }
  }
}

# Multiwindow, multi-burn-rate alerts as in Google's SRE workbook, "Alerting on SLOs" (chapter 5, table
# 5-8, for a 30-day window): page when 2% of the budget goes in an hour (burn rate 14.4) or 5% in six
# hours (6); each long window is confirmed by a short one of 1/12 its length (5 min, 30 min), so an
# alert stops soon after the burning does. sre.google/workbook/alerting-on-slos
locals {
  burn_windows = {
    fast = { long = "60m", short = "5m", rate = 14.4, spent = "2% of the 30-day error budget in an hour" }
    slow = { long = "360m", short = "30m", rate = 6, spent = "5% of the 30-day error budget in six hours" }
  }
  burn_alerts = {
    for pair in setproduct(keys(local.slos), keys(local.burn_windows)) :
    "${pair[0]}_${pair[1]}" => { slo = pair[0], window = local.burn_windows[pair[1]] }
  }
}

resource "google_monitoring_alert_policy" "burn" {
  for_each     = local.burn_alerts
  display_name = "lote: SLO ${each.value.slo} burning ${each.value.window.rate}x (${each.value.window.spent})"
  combiner     = "AND"
  dynamic "conditions" {
    for_each = [each.value.window.long, each.value.window.short]
    content {
      display_name = "burn rate above ${each.value.window.rate} over ${conditions.value}"
      condition_threshold {
        filter          = "select_slo_burn_rate(\"${google_monitoring_slo.slo[each.value.slo].name}\", \"${conditions.value}\")"
        comparison      = "COMPARISON_GT"
        threshold_value = each.value.window.rate
        duration        = "0s"
      }
    }
  }
  documentation {
    content   = "${local.slos[each.value.slo].title}: the SLO's error budget is going ${each.value.window.rate} times as fast as it may. The dashboard `lote (${local.p})` shows which tier and why: accept-to-done by tier, failures by code, the breaker and model 429s, the backlog; for webhooks their lag and failures (one tenant's receiver down counts too)."
    mime_type = "text/markdown"
  }
  notification_channels = [google_monitoring_notification_channel.email.id]
}
