"""Mutation: what the backend receives (headers, JSON bodies)."""
