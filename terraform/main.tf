# The deployment (functions, queues from ../queue.yaml, Firestore, buckets, secrets, alerts) is built
# in issue 7. Until then this module only pins the provider so `terraform fmt` has something to check.
provider "google" {
  project = var.project_id
  region  = var.region
}
