"""An emulator of the Cloud Tasks v2 gRPC service that honours rates, concurrency and retries."""
