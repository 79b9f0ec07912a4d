# One service account per function, least privilege; plus the identity Cloud Tasks and Cloud
# Scheduler sign OIDC tokens as (the only caller the worker admits).

locals {
  accounts = {
    api            = "lote api: public HTTP API"
    worker         = "lote worker: Cloud Tasks target"
    stripe_webhook = "lote stripe_webhook: Stripe events"
    invoker        = "lote tasks invoker: OIDC identity of Cloud Tasks and Scheduler"
  }
}

resource "google_service_account" "fn" {
  for_each     = local.accounts
  account_id   = "${local.p}-${replace(each.key, "_", "-")}"
  display_name = each.value
  depends_on   = [google_project_service.api]
}

# Firestore: every function reads and writes documents.
resource "google_project_iam_member" "datastore_user" {
  for_each = toset(["api", "worker", "stripe_webhook"])
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = google_service_account.fn[each.key].member
}

# Cloud Tasks: the api enqueues generations and fan-out; the worker enqueues generations (fan-out),
# checker tasks and webhook deliveries.
# Spans go to Cloud Trace (lote/tracing.py, LOTE_TRACE_EXPORTER=gcp).
resource "google_project_iam_member" "trace_agent" {
  for_each = toset(["api", "worker", "stripe_webhook"])
  project  = var.project_id
  role     = "roles/cloudtrace.agent"
  member   = google_service_account.fn[each.key].member
}

resource "google_project_iam_member" "tasks_enqueuer" {
  for_each = toset(["api", "worker"])
  project  = var.project_id
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.fn[each.key].member
}

# Creating a task with an OIDC token needs actAs on the token's service account.
resource "google_service_account_iam_member" "act_as_invoker" {
  for_each           = toset(["api", "worker"])
  service_account_id = google_service_account.fn["invoker"].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.fn[each.key].member
}

# Signed output URLs: the api signs through IAM signBlob as itself.
resource "google_service_account_iam_member" "api_signs_as_itself" {
  service_account_id = google_service_account.fn["api"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_service_account.fn["api"].member
}

# Vertex AI instead of an API key: the worker calls Gemini as itself.
resource "google_project_iam_member" "worker_vertex" {
  count   = var.use_vertexai ? 1 : 0
  project = var.project_id
  role    = "roles/aiplatform.user"
  member  = google_service_account.fn["worker"].member
}

# Buckets: who may do what, bucket by bucket.
locals {
  bucket_roles = {
    # Uploads (signed PUT URLs), data: inputs and batch manifests are written by the api.
    "api-inputs-admin"    = { bucket = "inputs", sa = "api", role = "roles/storage.objectAdmin" }
    "api-manifests-admin" = { bucket = "manifests", sa = "api", role = "roles/storage.objectAdmin" }
    # A V4 signed URL grants what its signer may do: the api signs output URLs, so it must read them.
    "api-outputs-viewer"   = { bucket = "outputs", sa = "api", role = "roles/storage.objectViewer" }
    "worker-outputs-admin" = { bucket = "outputs", sa = "worker", role = "roles/storage.objectAdmin" }
    "worker-inputs-viewer" = { bucket = "inputs", sa = "worker", role = "roles/storage.objectViewer" }
    # Batch fan-out stores items' data: inputs (create only: objects are written once, never replaced).
    "worker-inputs-creator" = { bucket = "inputs", sa = "worker", role = "roles/storage.objectCreator" }
    # Fan-out reads each chunk's byte range of the batch manifest.
    "worker-manifest-viewer" = { bucket = "manifests", sa = "worker", role = "roles/storage.objectViewer" }
  }
}

resource "google_storage_bucket_iam_member" "fn" {
  for_each = local.bucket_roles
  bucket   = google_storage_bucket.data[each.value.bucket].name
  role     = each.value.role
  member   = google_service_account.fn[each.value.sa].member
}
