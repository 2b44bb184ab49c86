"""Bytes <-> header values. No state, no I/O, imports nothing else of ours."""
from .errors import MalformedPacket

__all__ = ["MalformedPacket"]
