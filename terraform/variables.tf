variable "project_id" {
  type        = string
  description = "Google Cloud project that receives every lote resource."
}

variable "region" {
  type        = string
  description = "Region of the functions, queues, scheduler and buckets."
  default     = "us-central1"
}

variable "firestore_location" {
  type        = string
  description = "Location of the Firestore database (a multi-region such as nam5, or a region)."
  default     = "nam5"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (functions, service accounts, buckets get the project id too)."
  default     = "lote"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))
    error_message = "name_prefix must be 2-15 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "python_runtime" {
  type        = string
  description = "Cloud Functions runtime of every function."
  default     = "python311"
}

variable "functions" {
  type = map(object({
    min_instances = number
    max_instances = number
    concurrency   = number
    memory        = string
    cpu           = string
  }))
  description = "Scaling of each function: instances, request concurrency (THREADS matches it), memory and vCPU."
  # The worker's concurrency is derived in bench/RESULTS.md ("Batches"): the fewest requests per instance
  # that keep infrastructure at or under $0.01 per 1,000 images, and CPU under 25% of the vCPU. Its memory
  # too ("The worker's memory"): 64 requests with one listing photo each peaked at 1.3 GiB. The api's
  # from "Waiting end users": a `Prefer: wait` holds a thread (and a listen stream) and little else,
  # 1,000 waits held 175 MiB; submissions take LOTE_ADMISSION_CONCURRENCY turns of the instance.
  default = {
    api            = { min_instances = 0, max_instances = 20, concurrency = 250, memory = "1Gi", cpu = "1" }
    worker         = { min_instances = 0, max_instances = 50, concurrency = 64, memory = "2Gi", cpu = "1" }
    stripe_webhook = { min_instances = 0, max_instances = 5, concurrency = 20, memory = "512Mi", cpu = "1" }
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : f.concurrency >= 2 && f.max_instances >= f.min_instances])
    error_message = "Each function needs concurrency of at least 2 and max_instances >= min_instances."
  }
  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^[0-9]+(Mi|Gi)$", f.memory))])
    error_message = "Each function's memory is a whole number of Mi or Gi, such as 512Mi or 2Gi."
  }
}

variable "task_dispatch_deadline_s" {
  type        = number
  description = "Dispatch deadline of generation tasks and the worker's lease; the worker's timeout is above it."
  default     = 300
  validation {
    condition     = var.task_dispatch_deadline_s >= 15 && var.task_dispatch_deadline_s <= 1800
    error_message = "Cloud Tasks accepts dispatch deadlines from 15 s to 30 min."
  }
}

variable "retention_days" {
  type        = number
  description = "Days finished jobs, batches and webhook deliveries stay in Firestore (TTL on expires_at)."
  default     = 30
}

variable "input_retention_days" {
  type        = number
  description = "Days uploaded inputs stay in the input bucket."
  default     = 7
}

variable "output_retention_days" {
  type        = number
  description = "Days generated images stay in the output bucket."
  default     = 30
}

variable "manifest_retention_days" {
  type        = number
  description = "Days batch manifests stay in the manifest bucket."
  default     = 30
}

variable "default_model" {
  type        = string
  description = "Model used when a request names none."
  default     = "gemini-2.5-flash-image"
}

variable "use_vertexai" {
  type        = bool
  description = "Call Gemini through Vertex AI with the worker's service account instead of an API key secret."
  default     = false
}

variable "model_location" {
  type        = string
  description = "Vertex AI location of the model when use_vertexai is set (image models are often only in global)."
  default     = "global"
}

variable "credit_packs" {
  type        = map(number)
  description = "Credit packs on sale: Stripe price lookup_key => credits it buys."
  default     = { credits_100 = 100, credits_1000 = 1000, credits_10000 = 10000 }
}

variable "checkout_success_url" {
  type        = string
  description = "Where Stripe Checkout returns the buyer after paying."
}

variable "checkout_cancel_url" {
  type        = string
  description = "Where Stripe Checkout returns the buyer when abandoned."
}

variable "sweep_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the repair sweep."
  default     = "*/5 * * * *"
}

variable "stripe_reconcile_schedule" {
  type        = string
  description = "Cron schedule (UTC) of the Stripe reconciliation."
  default     = "17 * * * *"
}

variable "alert_email" {
  type        = string
  description = "Email address that receives alerts."
}

variable "failure_ratio_threshold" {
  type        = number
  description = "Alert when more than this share of finished images failed over 15 minutes."
  default     = 0.1
}

variable "queue_delay_threshold_s" {
  type        = number
  description = "Alert when tasks wait longer than this past their scheduled time (the oldest queued task's age)."
  default     = 900
}

variable "trace_sample_ratio" {
  type        = number
  description = "Share of new traces the functions record in Cloud Trace (about 8 spans an image; Cloud Trace bills spans past its free allowance)."
  default     = 0.1
  validation {
    condition     = var.trace_sample_ratio >= 0 && var.trace_sample_ratio <= 1
    error_message = "trace_sample_ratio is a share between 0 and 1."
  }
}

variable "slo_goals" {
  type = object({
    singles  = number
    items    = number
    webhooks = number
  })
  description = "Share of each SLO's events that must be good over 30 days (slos.tf): singles and batch items done within their tier's target (functions/lote/jobs/worker.py TARGET_S), webhooks acknowledged within a minute of their event."
  default     = { singles = 0.995, items = 0.99, webhooks = 0.99 }
  validation {
    condition     = alltrue([for goal in values(var.slo_goals) : goal > 0 && goal < 1])
    error_message = "Each SLO goal is a share strictly between 0 and 1 (Cloud Monitoring accepts up to 0.9999)."
  }
}

variable "billing_account" {
  type        = string
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) that pays for the project: with it a monthly budget on the project's spend emails the alert address at 50%, 90% and 100% spent and 100% forecast (budget.tf; needs roles/billing.costsManager on the account). Empty: no budget."
  default     = ""
}

variable "monthly_budget_usd" {
  type        = number
  description = "The project's monthly budget in whole US dollars (every service, the model's calls included), when billing_account is set."
  default     = 100
  validation {
    condition     = var.monthly_budget_usd > 0 && floor(var.monthly_budget_usd) == var.monthly_budget_usd
    error_message = "monthly_budget_usd is a whole number of dollars above 0."
  }
}
