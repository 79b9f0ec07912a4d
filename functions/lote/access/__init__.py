"""Browser-safe access: client tokens minted by a tenant's server for its end users, and origins."""
