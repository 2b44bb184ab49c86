"""An echo server with one thread per connection.

    python3 examples/echo_threads.py [PORT]
    tunstack run examples/echo_threads.py [PORT]
"""
import socket
import sys
import threading

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8007


def handle(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


with socket.create_server(("", port), backlog=256) as server:
    print(f"echo (threads) listening on {server.getsockname()}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
