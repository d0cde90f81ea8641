"""Helpers for tests: realistic messages, and closeloop settings wired to the test servers."""
