"""A blocking echo server: one connection at a time (the course's first server).

    python3 examples/echo_blocking.py [PORT]           # on the kernel
    tunstack run examples/echo_blocking.py [PORT]      # on the userspace stack
"""
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8007

with socket.create_server(("", port)) as server:
    print(f"echo (blocking) listening on {server.getsockname()}", flush=True)
    while True:
        conn, peer = server.accept()          # sleeps until a connection is ready
        with conn:
            while True:
                data = conn.recv(65536)       # sleeps until data or EOF
                if not data:
                    break                     # the peer closed its side (FIN)
                conn.sendall(data)            # sleeps while the send buffer is full
