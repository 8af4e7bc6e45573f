"""Thin click shells over the featstore, augment and train libraries."""
