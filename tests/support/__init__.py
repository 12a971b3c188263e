"""Helpers shared by the test suites (independent checkers, fixtures' building blocks)."""
