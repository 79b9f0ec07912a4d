output "project_id" {
  description = "The project lote is deployed into."
  value       = var.project_id
}
