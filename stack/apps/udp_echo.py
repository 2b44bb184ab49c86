"""A UDP echo server (RFC 862, the UDP half) on a tunstack ``Stack``: the standard library's
``socketserver.UDPServer`` loop and handler, with a stack ``SOCK_DGRAM`` socket under it."""
from __future__ import annotations

import socket
import socketserver


class EchoDatagram(socketserver.BaseRequestHandler):
    """RFC 862: send back every datagram to its sender."""

    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


class UdpEchoServer(socketserver.UDPServer):
    """``serve_forever``/``shutdown``/``server_close`` as the standard library's; the socket is the stack's."""

    allow_reuse_address = False
    max_packet_size = 65507  # the largest UDP payload over IPv4 (socketserver's default is 8192)

    def __init__(self, stack, port: int, handler=EchoDatagram):
        socketserver.BaseServer.__init__(self, ("", port), handler)
        self.socket = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.server_bind()
        except BaseException:
            self.server_close()
            raise

    # the graceful-stop interface `tunstack serve` drives (stack/cli.py:_shut_down): UDP has no
    # connections to finish, so not accepting means not serving
    def stop_accepting(self) -> None:
        self.stop()

    def drain(self) -> None:
        pass

    def active(self) -> int:
        return 0

    def stop(self) -> None:
        if self.socket.fileno() >= 0:
            self.shutdown()
            self.server_close()
