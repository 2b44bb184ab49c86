"""A single-threaded echo server on selectors (epoll on Linux): non-blocking sockets, one loop.

    python3 examples/echo_selectors.py [PORT]
    tunstack run examples/echo_selectors.py [PORT]
"""
import selectors
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8007
sel = selectors.DefaultSelector()
pending: dict[socket.socket, bytearray] = {}   # received, not yet echoed
eof: set[socket.socket] = set()                # the peer has sent FIN


def accept(server: socket.socket, mask: int) -> None:
    conn, _ = server.accept()
    conn.setblocking(False)
    pending[conn] = bytearray()
    sel.register(conn, selectors.EVENT_READ, serve)


def serve(conn: socket.socket, mask: int) -> None:
    buf = pending[conn]
    if mask & selectors.EVENT_READ:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            data = None
        except ConnectionError:
            data = b""
        if data == b"":
            eof.add(conn)
        elif data:
            buf += data
    if buf:
        try:
            del buf[:conn.send(buf)]
        except BlockingIOError:
            pass
    if conn in eof and not buf:                  # all echoed: close (our FIN)
        sel.unregister(conn)
        del pending[conn]
        eof.discard(conn)
        conn.close()
        return
    want = (0 if conn in eof else selectors.EVENT_READ) | (selectors.EVENT_WRITE if buf else 0)
    sel.modify(conn, want, serve)                # wait for room only while something is left


server = socket.create_server(("", port), backlog=256)
server.setblocking(False)
sel.register(server, selectors.EVENT_READ, accept)
print(f"echo (selectors) listening on {server.getsockname()}", flush=True)
while True:
    for key, mask in sel.select():
        key.data(key.fileobj, mask)
