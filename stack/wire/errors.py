"""The one error type the wire layer raises for bad input."""


class MalformedPacket(ValueError):
    """Input bytes that are not a valid header. ``reason`` is a short name used as a drop counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
