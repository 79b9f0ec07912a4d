"""Usage analytics: per-tenant rollups of finished images, written as jobs end, read per request."""
