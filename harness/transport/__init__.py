"""The subprocess transport: a port that runs as its own process, spoken to over docs/protocol.md."""

from harness.transport.client import PROTOCOL, SubprocessPort

__all__ = ["PROTOCOL", "SubprocessPort"]
