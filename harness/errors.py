"""Errors the harness reports as 'could not run' (exit code 2)."""


class HarnessError(Exception):
    """Bad input, usage or environment: reported as one line, exit code 2."""
