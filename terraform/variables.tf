variable "project_id" {
  type        = string
  description = "Google Cloud project that receives every lote resource."
}

variable "region" {
  type        = string
  description = "Region of the functions, queues and buckets."
  default     = "us-central1"
}
