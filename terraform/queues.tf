# Every queue in ../queue.yaml, converted by modules/config (the rule the local emulator documents:
# task_retry_limit + 1 = max_attempts, task_age_limit = max_retry_duration).
# bucket_size cannot be set: the API's max_burst_size is output-only and Cloud Tasks derives it
# from the rate. NEVER upload queue.yaml with `gcloud app deploy`: it would disable every queue it
# does not list (including these).

resource "google_cloud_tasks_queue" "q" {
  for_each = local.queues
  name     = each.key
  location = var.region

  rate_limits {
    max_dispatches_per_second = each.value.max_dispatches_per_second
    max_concurrent_dispatches = each.value.max_concurrent_dispatches
  }

  retry_config {
    max_attempts       = each.value.max_attempts
    max_retry_duration = "${each.value.max_retry_duration_s}s"
    min_backoff        = "${each.value.min_backoff_s}s"
    max_backoff        = "${each.value.max_backoff_s}s"
    max_doublings      = each.value.max_doublings
  }

  stackdriver_logging_config {
    sampling_ratio = 1.0
  }

  # A deleted queue's name cannot be reused for days: never let a plan delete one by accident.
  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_project_service.api]
}
