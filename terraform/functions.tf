# Every entry point of functions/main.py as a Cloud Function (2nd gen), from one source zip.

locals {
  function_settings = {
    api = {
      entry_point = "api"
      ingress     = "ALLOW_ALL" # public; every route checks its own API key or admin token
      timeout_s   = 60
    }
    worker = {
      entry_point = "worker"
      ingress     = "ALLOW_INTERNAL_ONLY" # Cloud Tasks and Scheduler count as internal
      # At least every queue's dispatch deadline (generation tasks: task_dispatch_deadline_s).
      timeout_s = var.task_dispatch_deadline_s + 60
    }
    stripe_webhook = {
      entry_point = "stripe_webhook"
      ingress     = "ALLOW_ALL" # Stripe calls it; the signature on the body is the authentication
      timeout_s   = 60
    }
  }
}

resource "google_cloudfunctions2_function" "fn" {
  #checkov:skip=CKV_GCP_124:api and stripe_webhook are public by design (API keys, Stripe signatures); the worker is ALLOW_INTERNAL_ONLY.
  for_each = local.function_settings
  name     = "${local.p}-${replace(each.key, "_", "-")}"
  location = var.region

  build_config {
    runtime     = var.python_runtime
    entry_point = each.value.entry_point
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions.name
      }
    }
  }

  service_config {
    min_instance_count               = var.functions[each.key].min_instances
    max_instance_count               = var.functions[each.key].max_instances
    max_instance_request_concurrency = var.functions[each.key].concurrency
    available_memory                 = var.functions[each.key].memory
    available_cpu                    = var.functions[each.key].cpu
    timeout_seconds                  = each.value.timeout_s
    ingress_settings                 = each.value.ingress
    service_account_email            = google_service_account.fn[each.key].email
    all_traffic_on_latest_revision   = true
    environment_variables = merge(local.common_env, local.malloc_env, {
      # functions-framework serves as many requests at once as it has threads.
      THREADS = tostring(var.functions[each.key].concurrency)
    })

    dynamic "secret_environment_variables" {
      for_each = { for k, s in local.all_secrets : k => s if contains(s.fns, each.key) }
      content {
        key        = secret_environment_variables.value.env
        project_id = var.project_id
        secret     = google_secret_manager_secret.s[secret_environment_variables.key].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_secret_manager_secret_iam_member.reader,
    google_project_iam_member.datastore_user,
  ]
}

# api and stripe_webhook are public (their own authentication); the worker admits only the OIDC
# identity of Cloud Tasks and Scheduler.
resource "google_cloud_run_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:The public API and Stripe's webhook must be reachable anonymously; each request is authenticated by the app.
  for_each = toset(["api", "stripe_webhook"])
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "worker_invoker" {
  location = var.region
  service  = google_cloudfunctions2_function.fn["worker"].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.fn["invoker"].member
}
