# The repo's config files in the shapes the Google resources take. No provider, no resource:
# tests run this module offline with `terraform apply` and compare its outputs with what the
# local Cloud Tasks emulator reads from the same files (tests/unit/test_terraform.py).

variable "queue_yaml" {
  type        = string
  description = "Contents of queue.yaml (App Engine format), the one source of queue settings."
}

variable "indexes_json" {
  type        = string
  description = "Contents of firestore.indexes.json (composite indexes and field overrides)."
}

locals {
  unit_s  = { s = 1, m = 60, h = 3600, d = 86400 }
  entries = yamldecode(var.queue_yaml).queue

  # The emulator's rule (infra/local/lote_local/queue_yaml.py): task_retry_limit counts RETRIES, so
  # max_attempts is one more (-1 = unlimited); task_age_limit is max_retry_duration (0 = unlimited).
  # Defaults are App Engine's. bucket_size has no API field (max_burst_size is output-only).
  queues = {
    for q in local.entries : q.name => {
      max_dispatches_per_second = tonumber(split("/", q.rate)[0]) / local.unit_s[trimspace(split("/", q.rate)[1])]
      max_concurrent_dispatches = try(q.max_concurrent_requests, 1000)
      max_attempts              = try(q.retry_parameters.task_retry_limit + 1, -1)
      max_retry_duration_s = try(
        tonumber(regex("^[0-9.]+", q.retry_parameters.task_age_limit)) * local.unit_s[regex("[smhd]$", q.retry_parameters.task_age_limit)],
        0
      )
      min_backoff_s = try(q.retry_parameters.min_backoff_seconds, 0.1)
      max_backoff_s = try(q.retry_parameters.max_backoff_seconds, 3600)
      max_doublings = try(q.retry_parameters.max_doublings, 16)
    }
  }

  indexes = jsondecode(var.indexes_json)
}

output "queues" {
  description = "Cloud Tasks settings per queue name (rates per second, durations in seconds)."
  value       = local.queues
}

output "indexes" {
  description = "Composite indexes: collection and fields in order."
  value = {
    for index in local.indexes.indexes :
    "${index.collectionGroup}:${join(",", [for f in index.fields : "${f.fieldPath}:${f.order}"])}" => {
      collection = index.collectionGroup
      fields     = [for f in index.fields : { path = f.fieldPath, order = f.order }]
    }
  }
}

output "ttl_fields" {
  description = "Fields whose timestamp is a TTL policy, with their single-field indexes off."
  value = {
    for o in local.indexes.fieldOverrides : "${o.collectionGroup}.${o.fieldPath}" => {
      collection = o.collectionGroup
      field      = o.fieldPath
    } if try(o.ttl, false)
  }
}

output "unindexed_fields" {
  description = "Fields exempt from single-field indexing (large values no query filters on)."
  value = {
    for o in local.indexes.fieldOverrides : "${o.collectionGroup}.${o.fieldPath}" => {
      collection = o.collectionGroup
      field      = o.fieldPath
    } if !try(o.ttl, false) && length(o.indexes) == 0
  }
}
