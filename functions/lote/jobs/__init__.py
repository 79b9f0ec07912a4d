"""Generation jobs: one image each, the same for single requests and batch items."""
