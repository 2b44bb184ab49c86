"""Packet scripts in packetdrill's syntax, run against the stack in virtual time (``tunstack script``).

``parse`` reads the text, ``run`` executes it and diffs every outbound segment, ``driver`` is
the single adapter to the TCP core, ``cli`` the subcommand. See docs/packet-scripts.md.
"""
