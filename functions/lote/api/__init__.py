"""HTTP routes of the two functions: `routes` (public API) and `tasks` (worker)."""
