"""The data plane: streaming HTTP forwarding to the configured backend."""
