"""Credits: the ledger every balance change goes through (debits, refunds and Stripe come next)."""
