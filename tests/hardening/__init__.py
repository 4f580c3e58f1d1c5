"""Hardening suite (issue 9): OpenAPI agreement, fuzzing, chaos, security checks."""
