# The Firestore database, the composite indexes of ../firestore.indexes.json and its TTL fields.

resource "google_firestore_database" "db" {
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
  depends_on                        = [google_project_service.api]
}

resource "google_firestore_index" "composite" {
  for_each   = module.config.indexes
  database   = google_firestore_database.db.name
  collection = each.value.collection

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.path
      order      = fields.value.order
    }
  }
}

# TTL: Firestore deletes a document once the timestamp in this field has passed (within about a
# day). The empty index_config also drops the field's single-field indexes (never queried).
resource "google_firestore_field" "ttl" {
  for_each   = module.config.ttl_fields
  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  ttl_config {}
  index_config {}
}

# Large fields no query filters on: not indexed (cheaper writes, no 1,500-byte index entries).
resource "google_firestore_field" "unindexed" {
  for_each   = module.config.unindexed_fields
  database   = google_firestore_database.db.name
  collection = each.value.collection
  field      = each.value.field

  index_config {}
}
