# Secret Manager secrets; their values are set outside Terraform (README, "Deploy"), so they never
# reach the state file. Each is readable only by the function that uses it.

locals {
  secrets = {
    # secret id suffix => (environment variable, functions that read it)
    "stripe-secret-key"     = { env = "LOTE_STRIPE_SECRET_KEY", fns = ["api", "stripe_webhook"] }
    "admin-token"           = { env = "LOTE_ADMIN_TOKEN", fns = ["api"] }
    "client-token-keys"     = { env = "LOTE_CLIENT_TOKEN_KEYS", fns = ["api"] }
    "stripe-webhook-secret" = { env = "LOTE_STRIPE_WEBHOOK_SECRET", fns = ["stripe_webhook"] }
  }
  # With Vertex AI the worker calls Gemini as its service account and needs no key.
  model_secret = var.use_vertexai ? {} : { "gemini-api-key" = { env = "GEMINI_API_KEY", fns = ["worker"] } }
  all_secrets  = merge(local.secrets, local.model_secret)
  secret_readers = merge([
    for id, s in local.all_secrets : { for fn in s.fns : "${id}:${fn}" => { secret = id, fn = fn } }
  ]...)
}

resource "google_secret_manager_secret" "s" {
  for_each  = local.all_secrets
  secret_id = "${local.p}-${each.key}"
  replication {
    auto {}
  }
  #checkov:skip=CKV_GCP_125:Google-managed encryption; a customer-managed key adds a KMS dependency the project does not otherwise have.
  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "reader" {
  for_each  = local.secret_readers
  secret_id = google_secret_manager_secret.s[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.fn[each.value.fn].member
}
