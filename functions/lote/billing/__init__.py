"""Credits: the ledger every balance change goes through, prices, Stripe checkout and its events."""
