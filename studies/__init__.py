"""studies: placeholder package (later issues)."""
