# A billing budget on this project's spend (every service, the model's calls through Vertex AI or the
# Gemini API's billing included), emailed to the alert channel. Only with a billing account: the
# account is not the project's to know, and creating a budget needs a role on the account
# (roles/billing.costsManager), not on the project.

resource "google_billing_budget" "lote" {
  count           = var.billing_account == "" ? 0 : 1
  billing_account = var.billing_account
  display_name    = "${local.p} (${var.project_id})"
  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }
  amount {
    specified_amount {
      currency_code = "USD" # the billing account's currency: a budget in another one is refused
      units         = tostring(var.monthly_budget_usd)
    }
  }
  # Spent so far this month: half, nine tenths, all of it; and all of it forecast by the month's end.
  threshold_rules {
    threshold_percent = 0.5
    spend_basis       = "CURRENT_SPEND"
  }
  threshold_rules {
    threshold_percent = 0.9
    spend_basis       = "CURRENT_SPEND"
  }
  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "CURRENT_SPEND"
  }
  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }
  all_updates_rule {
    monitoring_notification_channels = [google_monitoring_notification_channel.email.id]
    disable_default_iam_recipients   = false # the account's billing admins are told too
  }
  depends_on = [google_project_service.api]
}
