# Data buckets (inputs, outputs, manifests) and the bucket that holds the functions' source zip.

resource "google_storage_bucket" "data" {
  for_each                    = local.buckets
  name                        = each.value.name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  lifecycle_rule {
    condition {
      age = each.value.days
    }
    action {
      type = "Delete"
    }
  }

  # Browsers PUT inputs to signed URLs from other origins (POST /v1/uploads), and the web app reads
  # outputs with fetch() after the API's redirect (the operator's thumbnails). Signed URLs, not CORS,
  # decide who may touch an object.
  dynamic "cors" {
    for_each = contains(["inputs", "outputs"], each.key) ? [each.key] : []
    content {
      origin          = ["*"]
      method          = cors.value == "inputs" ? ["PUT"] : ["GET"]
      response_header = cors.value == "inputs" ? ["Content-Type", "x-goog-content-length-range"] : ["Content-Type"]
      max_age_seconds = 3600
    }
  }

  #checkov:skip=CKV_GCP_62:Access logs go to Cloud Audit Logs (Data Access), not a second log bucket.
  #checkov:skip=CKV_GCP_78:Versioning would keep deleted outputs and inputs past their retention; objects are written once (precondition), never overwritten.
  depends_on = [google_project_service.api]
}

resource "google_storage_bucket" "source" {
  name                        = "${var.project_id}-${local.p}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  #checkov:skip=CKV_GCP_62:Access logs go to Cloud Audit Logs (Data Access), not a second log bucket.
  #checkov:skip=CKV_GCP_78:Each source zip is named by its hash and never overwritten.
  depends_on = [google_project_service.api]
}

# The whole functions/ folder, zipped; the object is named by its hash, so any code change
# creates a new object and redeploys the functions.
data "archive_file" "functions" {
  type        = "zip"
  source_dir  = "${path.module}/../functions"
  output_path = "${path.module}/.build/functions.zip"
  excludes    = ["**/__pycache__/**", "**/*.pyc"]
}

resource "google_storage_bucket_object" "functions" {
  name   = "functions-${data.archive_file.functions.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.functions.output_path
}
