"""An asyncio echo server (streams).

    python3 examples/echo_asyncio.py [PORT]
    tunstack run examples/echo_asyncio.py [PORT]
"""
import asyncio
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8007


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()             # waits while the send buffer is full
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(handle, None, port, backlog=256)
    print(f"echo (asyncio) listening on {server.sockets[0].getsockname()}", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
