"""Batches: many generation jobs accepted at once, fanned out in chunks, tracked without hot documents."""
