"""Signed webhooks: events produced once per state change, delivered until acknowledged or a day passed."""
