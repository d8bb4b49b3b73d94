"""Formats and storage: reading inputs, writing outputs, blob storage."""
