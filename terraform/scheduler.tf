# The repair sweep: gives a task to accepted work that lost it (crash between commit and enqueue,
# expired leases, webhook deliveries). Idempotent, so running it often is safe.

resource "google_cloud_scheduler_job" "sweep" {
  name      = "${local.p}-repair-sweep"
  region    = var.region
  schedule  = var.sweep_schedule
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "${local.url.worker}/tasks/sweep"
    body        = base64encode("{}")
    headers     = { "Content-Type" = "application/json" }
    oidc_token {
      service_account_email = google_service_account.fn["invoker"].email
      audience              = local.url.worker
    }
  }

  retry_config {
    retry_count = 1
  }

  depends_on = [google_project_service.api, google_cloud_run_service_iam_member.worker_invoker]
}

# The Stripe reconciliation (lote/billing/reconcile.py): settles purchases, refunds and disputes whose
# events were missed. Idempotent (ledger ids derive from Stripe's objects).
resource "google_cloud_scheduler_job" "stripe_reconcile" {
  name      = "${local.p}-stripe-reconcile"
  region    = var.region
  schedule  = var.stripe_reconcile_schedule
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "${local.url.worker}/tasks/reconcile"
    body        = base64encode("{}")
    headers     = { "Content-Type" = "application/json" }
    oidc_token {
      service_account_email = google_service_account.fn["invoker"].email
      audience              = local.url.worker
    }
  }

  retry_config {
    retry_count = 1
  }

  depends_on = [google_project_service.api, google_cloud_run_service_iam_member.worker_invoker]
}
