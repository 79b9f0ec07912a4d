# One Cloud Monitoring dashboard of lote: PromQL over the log-based metrics of monitoring.tf (a
# distribution is a Prometheus histogram: _bucket, _sum, _count) and Google Cloud's own metrics (Cloud
# Tasks, Cloud Run). Each tile is a title and its queries; a test checks each names a metric that exists.

locals {
  q = local.promql
  # The mean of a distribution of gauges (the dispatcher's tick fields) over 5 min.
  mean      = { for field in keys(local.tick_fields) : field => "sum(rate(${local.q["tick_${field}"]}_sum[5m])) / sum(rate(${local.q["tick_${field}"]}_count[5m]))" }
  functions = join("|", [for f in google_cloudfunctions2_function.fn : f.name])

  dashboard_tiles = [
    {
      title = "Images per minute by tier: succeeded"
      unit  = "images/min"
      queries = [
        "sum by (tier) (rate(${local.q.succeeded}[5m])) * 60",
      ]
    },
    {
      title = "Images per minute by tier: failed for good"
      unit  = "images/min"
      queries = [
        "sum by (tier) (rate(${local.q.failed}[5m])) * 60",
      ]
    },
    {
      title = "Model quota: the pace's share of the queue's ceiling, and the share of calls refused (429)"
      unit  = "share"
      queries = [
        local.mean.pace_share,
        local.mean.quota_error_share,
      ]
    },
    {
      title = "Model 429s (throttles) per minute by tier"
      unit  = "calls/min"
      queries = [
        "sum by (tier, end) (rate(${local.q.model_throttled}[5m])) * 60",
      ]
    },
    {
      title = "Breaker state (0 closed, 1 open, 2 blocked; mean over 5 min)"
      unit  = "level"
      queries = [
        local.mean.breaker_level,
      ]
    },
    {
      title = "Backlog: released and not started, held lanes by tier, Cloud Tasks queue depth"
      unit  = "jobs / lanes / tasks"
      queries = [
        local.mean.in_queue,
        local.mean.lanes_interactive,
        local.mean.lanes_express,
        local.mean.lanes_standard,
        local.mean.lanes_economy,
        "sum by (queue_id) (cloudtasks_googleapis_com:queue_depth{monitored_resource=\"cloud_tasks_queue\"})",
      ]
    },
    {
      title = "Oldest held work per tier (s, the oldest active lane) and acceptance to first attempt, p99 (ms)"
      unit  = "s / ms"
      queries = [
        local.mean.oldest_held_s_interactive,
        local.mean.oldest_held_s_express,
        local.mean.oldest_held_s_standard,
        local.mean.oldest_held_s_economy,
        "histogram_quantile(0.99, sum by (le, tier) (rate(${local.q.waited}_bucket[15m])))",
      ]
    },
    {
      title = "Accept to done, single generations: p50 and p95"
      unit  = "ms"
      queries = [
        "histogram_quantile(0.5, sum by (le) (rate(${local.q.accept_to_done}_bucket{kind=\"single\"}[15m])))",
        "histogram_quantile(0.95, sum by (le) (rate(${local.q.accept_to_done}_bucket{kind=\"single\"}[15m])))",
      ]
    },
    {
      title = "Accept to done, batch items by tier: p50 and p95"
      unit  = "ms"
      queries = [
        "histogram_quantile(0.5, sum by (le, tier) (rate(${local.q.accept_to_done}_bucket{kind=\"item\"}[1h])))",
        "histogram_quantile(0.95, sum by (le, tier) (rate(${local.q.accept_to_done}_bucket{kind=\"item\"}[1h])))",
      ]
    },
    {
      title = "Failures by code per minute"
      unit  = "images/min"
      queries = [
        "sum by (code) (rate(${local.q.failed}[5m])) * 60",
      ]
    },
    {
      title = "Webhooks per minute: delivered, failed for good"
      unit  = "deliveries/min"
      queries = [
        "sum(rate(${local.q.webhook_lag}_count[5m])) * 60",
        "sum(rate(${local.q.webhooks_failed}[5m])) * 60",
      ]
    },
    {
      title = "Webhook lag, event to acknowledged: p50 and p95"
      unit  = "ms"
      queries = [
        "histogram_quantile(0.5, sum by (le) (rate(${local.q.webhook_lag}_bucket[15m])))",
        "histogram_quantile(0.95, sum by (le) (rate(${local.q.webhook_lag}_bucket[15m])))",
      ]
    },
    {
      title = "Firestore contention: 429s per minute"
      unit  = "answers/min"
      queries = [
        "sum by (kind) (rate(${local.q.firestore_contended}[5m])) * 60",
      ]
    },
    {
      title = "Model spend by tier (US dollars per hour, at published prices)"
      unit  = "USD/h"
      queries = [
        "sum by (tier) (rate(${local.q.model_spend}_sum[1h])) * 3600 / 1e6",
      ]
    },
    {
      title = "Requests per second by function and response class (Cloud Run)"
      unit  = "requests/s"
      queries = [
        "sum by (service_name, response_code_class) (rate(run_googleapis_com:request_count{monitored_resource=\"cloud_run_revision\", service_name=~\"${local.functions}\"}[5m]))",
      ]
    },
  ]
}

resource "google_monitoring_dashboard" "lote" {
  dashboard_json = jsonencode({
    displayName = "lote (${local.p})"
    mosaicLayout = {
      columns = 12
      tiles = [
        for i, tile in local.dashboard_tiles : {
          xPos   = (i % 2) * 6
          yPos   = floor(i / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = tile.title
            xyChart = {
              dataSets = [
                for query in tile.queries : {
                  plotType        = "LINE"
                  targetAxis      = "Y1"
                  timeSeriesQuery = { prometheusQuery = query }
                }
              ]
              yAxis = { label = tile.unit, scale = "LINEAR" }
            }
          }
        }
      ]
    }
  })
  depends_on = [google_project_service.api]
}
