locals {
  apis = toset([
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudtasks.googleapis.com",
    "firestore.googleapis.com",
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "cloudscheduler.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "cloudtrace.googleapis.com",
    "billingbudgets.googleapis.com", # budget.tf (the budget itself only when billing_account is set)
    var.use_vertexai ? "aiplatform.googleapis.com" : "generativelanguage.googleapis.com",
  ])
}

resource "google_project_service" "api" {
  for_each = local.apis
  service  = each.value
  # Other workloads in the project may use these APIs: never disable them on destroy.
  disable_on_destroy = false
}
