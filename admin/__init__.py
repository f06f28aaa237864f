"""The operators' and city credit office's web admin (server-rendered, Simplified Chinese first)."""
