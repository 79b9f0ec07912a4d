# lote on Google Cloud. One source for each setting: queue.yaml (queues), firestore.indexes.json
# (indexes and TTLs), functions/ (code), the variables below (everything else).

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

module "config" {
  source       = "./modules/config"
  queue_yaml   = file("${path.module}/../queue.yaml")
  indexes_json = file("${path.module}/../firestore.indexes.json")
}

locals {
  p = var.name_prefix
  # Cloud Run's deterministic URLs: known before the functions exist, so a function's own URL (and
  # the worker's, the OIDC audience) can be in its environment without a dependency cycle.
  url = {
    for name in keys(var.functions) :
    name => "https://${local.p}-${replace(name, "_", "-")}-${data.google_project.this.number}.${var.region}.run.app"
  }
  buckets = {
    inputs    = { name = "${var.project_id}-${local.p}-inputs", days = var.input_retention_days }
    outputs   = { name = "${var.project_id}-${local.p}-outputs", days = var.output_retention_days }
    manifests = { name = "${var.project_id}-${local.p}-manifests", days = var.manifest_retention_days }
  }
  queues = module.config.queues
  # The worker's attempts reserve memory for their images (functions/lote/jobs/memory.py): all of the
  # instance's but 600 MiB, kept for the runtime and the allocator's slack (bench/RESULTS.md).
  worker_memory_mib = (endswith(var.functions["worker"].memory, "Gi")
    ? tonumber(trimsuffix(var.functions["worker"].memory, "Gi")) * 1024
  : tonumber(trimsuffix(var.functions["worker"].memory, "Mi")))

  # glibc's allocator, read at process start: buffers of 1 MiB or more (images, their base64) are mapped
  # and unmapped, not kept in per-thread arenas. With its defaults the worker's heaviest requests held
  # 3.3 GiB at their peak, with these 1.4 GiB (bench/RESULTS.md, "The worker's memory").
  malloc_env = {
    MALLOC_MMAP_THRESHOLD_ = "1048576"
    MALLOC_ARENA_MAX       = "2"
  }

  # What every function reads (lote/settings.py); secrets are wired per function in functions.tf.
  common_env = {
    LOTE_MODE                     = "production"
    LOTE_PROJECT_ID               = var.project_id
    LOTE_LOCATION                 = var.region
    LOTE_INPUT_BUCKET             = local.buckets.inputs.name
    LOTE_OUTPUT_BUCKET            = local.buckets.outputs.name
    LOTE_MANIFEST_BUCKET          = local.buckets.manifests.name
    LOTE_API_URL                  = local.url.api
    LOTE_WORKER_URL               = local.url.worker
    LOTE_GENERATION_QUEUE         = google_cloud_tasks_queue.q["generation"].name
    LOTE_FANOUT_QUEUE             = google_cloud_tasks_queue.q["fanout"].name
    LOTE_WEBHOOK_QUEUE            = google_cloud_tasks_queue.q["webhooks"].name
    LOTE_DISPATCH_QUEUE           = google_cloud_tasks_queue.q["dispatch"].name
    LOTE_DISPATCH_CEILING_RPS     = tostring(local.queues.generation.max_dispatches_per_second)
    LOTE_TASKS_INVOKER_EMAIL      = google_service_account.fn["invoker"].email
    LOTE_GENERATION_MAX_ATTEMPTS  = tostring(local.queues.generation.max_attempts)
    LOTE_GENERATION_MAX_RETRY_S   = tostring(local.queues.generation.max_retry_duration_s)
    LOTE_WEBHOOK_MAX_ATTEMPTS     = tostring(local.queues.webhooks.max_attempts)
    LOTE_WEBHOOK_MAX_RETRY_S      = tostring(local.queues.webhooks.max_retry_duration_s)
    LOTE_TASK_DISPATCH_DEADLINE_S = tostring(var.task_dispatch_deadline_s)
    LOTE_SIGNING_SERVICE_ACCOUNT  = google_service_account.fn["api"].email
    LOTE_RETENTION_DAYS           = tostring(var.retention_days)
    LOTE_OUTPUT_RETENTION_DAYS    = tostring(var.output_retention_days)
    LOTE_TRACE_EXPORTER           = "gcp"
    LOTE_TRACE_SAMPLE_RATIO       = tostring(var.trace_sample_ratio)
    LOTE_DEFAULT_MODEL            = var.default_model
    LOTE_USE_VERTEXAI             = tostring(var.use_vertexai)
    LOTE_MODEL_LOCATION           = var.model_location
    LOTE_CREDIT_PACKS             = jsonencode(var.credit_packs)
    LOTE_CHECKOUT_SUCCESS_URL     = var.checkout_success_url
    LOTE_CHECKOUT_CANCEL_URL      = var.checkout_cancel_url
    LOTE_WORKER_MEMORY_BUDGET_MB  = tostring(max(64, local.worker_memory_mib - 600))
  }
}
