"""One small class per external service, each built lazily: importing opens no connection."""
