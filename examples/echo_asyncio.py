"""An asyncio echo server (streams) that shuts down gracefully on SIGINT/SIGTERM.

    python3 examples/echo_asyncio.py [PORT]
    tunstack run examples/echo_asyncio.py [PORT]
"""
import asyncio
import signal
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8007
handlers: set[asyncio.Task] = set()
writers: set[asyncio.StreamWriter] = set()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    handlers.add(asyncio.current_task())
    writers.add(writer)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()         # waits while the send buffer is full
    except ConnectionError:
        pass
    finally:
        writers.discard(writer)
        handlers.discard(asyncio.current_task())
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, None, port, backlog=256)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"echo (asyncio) listening on {server.sockets[0].getsockname()}", flush=True)
    await stop.wait()
    server.close()                       # stop accepting
    for writer in list(writers):
        writer.close()                   # FIN to every client: each handler reads EOF and ends
    await asyncio.gather(*handlers, return_exceptions=True)

asyncio.run(main())
