"""Operator commands (`lote-admin`)."""
