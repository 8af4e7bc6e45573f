"""featstore."""
