"""hw_models: placeholder package (later issues)."""
