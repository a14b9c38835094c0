"""mapping: placeholder package (later issues)."""
