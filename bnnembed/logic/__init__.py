"""Reason about decisions: explanations and certificates."""
