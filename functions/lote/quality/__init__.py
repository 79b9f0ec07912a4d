"""The quality pipeline: analyze the input, generate, verify the output against a rubric."""
