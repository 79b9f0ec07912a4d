output "api_url" {
  description = "Base URL of the public API."
  value       = google_cloudfunctions2_function.fn["api"].service_config[0].uri
}

output "stripe_webhook_url" {
  description = "Point a Stripe webhook endpoint here (events: checkout.session.completed, checkout.session.async_payment_succeeded, charge.refunded, charge.dispute.created, charge.dispute.funds_withdrawn, charge.dispute.funds_reinstated, charge.dispute.closed, charge.refund.updated)."
  value       = google_cloudfunctions2_function.fn["stripe_webhook"].service_config[0].uri
}

output "worker_url" {
  description = "The Cloud Tasks target (internal only)."
  value       = google_cloudfunctions2_function.fn["worker"].service_config[0].uri
}

output "buckets" {
  description = "Names of the input, output and manifest buckets."
  value       = { for k, b in google_storage_bucket.data : k => b.name }
}

output "secrets" {
  description = "Secret Manager secrets to give a version (value) before the functions can start."
  value       = { for k, s in google_secret_manager_secret.s : local.all_secrets[k].env => s.secret_id }
}
