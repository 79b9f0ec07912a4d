# Jobs Cloud Scheduler runs on the worker (OIDC, like Cloud Tasks). Each is idempotent, so running it
# often is safe:
# - the repair sweep gives a task to accepted work that lost it (crash between commit and enqueue,
#   expired leases, webhook deliveries) and settles batches whose checker was lost;
# - the Stripe reconciliation (lote/billing/reconcile.py) settles purchases, refunds and disputes
#   whose events were missed (ledger ids derive from Stripe's objects).
locals {
  scheduled = {
    sweep            = { name = "repair-sweep", schedule = var.sweep_schedule, path = "/tasks/sweep" }
    stripe_reconcile = { name = "stripe-reconcile", schedule = var.stripe_reconcile_schedule, path = "/tasks/reconcile" }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each  = local.scheduled
  name      = "${local.p}-${each.value.name}"
  region    = var.region
  schedule  = each.value.schedule
  time_zone = "Etc/UTC"

  http_target {
    http_method = "POST"
    uri         = "${local.url.worker}${each.value.path}"
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

moved {
  from = google_cloud_scheduler_job.sweep
  to   = google_cloud_scheduler_job.job["sweep"]
}
