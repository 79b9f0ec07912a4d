"""HTTP routes of the three functions: the public API (`*_routes` by domain, `http` for parsing,
rendering and authentication), the worker's task handlers (`task_routes`), the Stripe endpoint."""
