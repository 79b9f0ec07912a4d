"""lote: image generation requests in, images out, on Google Cloud serverless."""

__version__ = "0.1.0"
