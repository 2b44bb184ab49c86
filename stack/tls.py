"""TLS over a stack socket, through ``ssl.MemoryBIO``.

``ssl.SSLContext.wrap_socket`` hands OpenSSL a kernel fd; a stack socket has none (its
``fileno()`` is a readiness fd). ``wrap_socket(sock, context, ...)`` here runs the same
``SSLContext`` over two memory BIOs instead (``context.wrap_bio``, the sans-I/O TLS object
asyncio's own TLS uses) and moves the records through the socket's ``send``/``recv``:

    import ssl
    from stack import tls
    ctx = ssl.create_default_context(cafile="host.pem")
    c = tls.wrap_socket(st.create_connection(("192.0.2.1", 8443)), ctx, server_hostname="host")
    c.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n"); print(c.recv(65536))

The result has ``ssl.SSLSocket``'s methods that ``http.client``, ``urllib``, ``socketserver``
and ``wsgiref`` use (``do_handshake``, ``send``/``sendall``/``recv``/``recv_into``/``read``/
``write``, ``makefile``, ``unwrap``, ``getpeercert``, ``cipher``, ``version``,
``selected_alpn_protocol``, ``pending``, ``close``); everything else (timeouts, names, options)
is the wrapped socket's. ``tunstack run`` installs it as ``SSLContext.wrap_socket`` for stack
sockets, so ``http.client.HTTPSConnection`` and ``urllib`` HTTPS go over the stack unchanged.
(asyncio's TLS never calls ``wrap_socket``: it runs its own memory BIOs over the transport.)

Blocking and timeout modes follow the socket's (a timeout bounds each wait for the peer). In
non-blocking mode a call that needs the peer raises ``ssl.SSLWantReadError`` (or
``SSLWantWriteError`` while earlier records wait for send-buffer room), as ``SSLSocket`` does.
"""
from __future__ import annotations

import errno
import select
import socket as _std
import ssl
import threading

_RECORDS = 65536  # bytes taken from the socket per read: several TLS records


def wrap_socket(sock, context: ssl.SSLContext, server_side: bool = False, do_handshake_on_connect: bool = True,
                suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                session: ssl.SSLSession | None = None) -> "TlsSocket":
    """``context.wrap_socket(sock, ...)`` for a socket without a kernel fd (a connected one: the
    handshake runs now unless ``do_handshake_on_connect`` is false)."""
    return TlsSocket(sock, context, server_side, do_handshake_on_connect, suppress_ragged_eofs, server_hostname,
                     session)


class TlsSocket:
    """A TLS connection over ``sock``: ``ssl.SSLObject`` + two ``MemoryBIO``s, records via ``sock``."""

    def __init__(self, sock, context: ssl.SSLContext, server_side: bool = False,
                 do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                 server_hostname: str | None = None, session: ssl.SSLSession | None = None):
        if server_side and server_hostname:
            raise ValueError("server_hostname can only be specified in client mode")
        self._sock = sock
        self.context = context
        self.server_side, self.server_hostname = server_side, server_hostname
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self.do_handshake_on_connect = do_handshake_on_connect
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(self._incoming, self._outgoing, server_side, server_hostname, session=session)
        self._unsent = b""       # records taken from the outgoing BIO that the socket has not taken yet
        # one thread may read while another writes (as with SSLSocket): the SSLObject is used under
        # _ssl_lock (never held during I/O), and records leave in the order produced under _send_lock
        self._ssl_lock, self._send_lock = threading.Lock(), threading.Lock()
        self._io_refs = 0        # makefile() objects (socket.makefile's bookkeeping)
        self._closed = False     # close() called (the socket itself closes once no makefile() object is left)
        self._real_closed = False
        if do_handshake_on_connect:
            self.do_handshake()

    # ------------------------------------------------------------ moving records
    def _run(self, op, *args, reading: bool = False):
        """``op(*args)`` on the SSLObject, feeding it from the socket until it needs nothing more.

        A read does not wait for room in the send buffer: records it finds waiting (another thread's
        writes, or what the read itself produced) go only as far as the socket takes them now, and the
        rest waits for the next call. Else a reader could block on a full send buffer while the peer
        waits for it to read (the peer's writes filling our receive window), as a kernel SSLSocket's
        reader never does."""
        while True:
            try:
                with self._ssl_lock:
                    result = op(*args)
            except ssl.SSLWantReadError:
                self._flush(wait=not reading)
                if not self._fill():
                    raise
                continue
            self._flush(wait=not reading)
            return result

    def _flush(self, wait: bool = True) -> None:
        """Send the records the SSLObject produced, in order. If another thread is sending, it takes ours
        too (it looks again after letting go); non-blocking (or not ``wait``), what the socket does not
        take now waits."""
        while self._send_lock.acquire(blocking=False):
            try:
                with self._ssl_lock:
                    data, self._unsent = self._unsent + self._outgoing.read(), b""
                if data:
                    self._send(data, wait)
            finally:
                self._send_lock.release()
            with self._ssl_lock:
                if not self._outgoing.pending:
                    return

    def _send(self, data: bytes, wait: bool = True) -> None:
        if wait and self._sock.gettimeout() != 0.0:
            self._sock.sendall(data)
            return
        if not wait and not self._sock.poll_events() & select.POLLOUT:
            n = 0  # a timed send would wait for POLLOUT first, MSG_DONTWAIT or not (as CPython's)
        else:
            try:
                n = self._sock.send(data, 0 if wait else _std.MSG_DONTWAIT)
            except BlockingIOError:
                n = 0
        if n < len(data):
            self._unsent = data[n:]
            if wait:
                raise ssl.SSLWantWriteError(ssl.SSL_ERROR_WANT_WRITE, "the socket's send buffer is full")

    def _fill(self) -> bool:
        """Records from the socket into the SSLObject; False when there are none yet (non-blocking)."""
        try:
            data = self._sock.recv(_RECORDS)
        except BlockingIOError:
            return False
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()  # the peer's FIN: the SSLObject reports a clean or a ragged end
        return True

    # ------------------------------------------------------------ the SSLSocket API
    def do_handshake(self, block: bool = False) -> None:
        self._check_open()
        self._run(self._sslobj.do_handshake)

    def read(self, len: int = 1024, buffer=None):
        """Decrypted bytes (or the count read into ``buffer``); b"" / 0 at the end of the stream."""
        self._check_open()
        try:
            if buffer is not None:
                return self._run(self._sslobj.read, len, buffer, reading=True)
            return self._run(self._sslobj.read, len, reading=True)
        except ssl.SSLError as exc:
            if exc.args[0] == ssl.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""  # the peer closed TCP without close_notify
            raise

    def write(self, data) -> int:
        self._check_open()
        return self._run(self._sslobj.write, data)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self._no_flags(flags, "recv")
        return self.read(buflen)

    def recv_into(self, buffer, nbytes: int | None = None, flags: int = 0) -> int:
        self._no_flags(flags, "recv_into")
        view = memoryview(buffer).cast("B")
        n = len(view) if not nbytes else min(nbytes, len(view))
        return self.read(n, view[:n]) if n else 0

    def send(self, data, flags: int = 0) -> int:
        self._no_flags(flags, "send")
        return self.write(data)

    def sendall(self, data, flags: int = 0) -> None:
        self._no_flags(flags, "sendall")
        view = memoryview(data).cast("B")
        while view:
            view = view[self.write(view):]

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """ssl.SSLSocket.sendfile(): the file's bytes through ``send`` (records), never the plain
        socket's own sendfile, which ``__getattr__`` would otherwise reach: bytes in the clear."""
        return _std.socket._sendfile_use_send(self, file, offset, count)

    makefile = _std.socket.makefile  # SocketIO over recv_into/send, as ssl.SSLSocket's

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def unwrap(self):
        """Send close_notify, wait for the peer's, and return the plain socket."""
        self._check_open()
        self._run(self._sslobj.unwrap)
        sock, self._sock = self._sock, None
        return sock

    def pending(self) -> int:
        with self._ssl_lock:
            return self._sslobj.pending()

    def getpeercert(self, binary_form: bool = False):
        return self._sslobj.getpeercert(binary_form)

    def cipher(self):
        return self._sslobj.cipher()

    def shared_ciphers(self):
        return self._sslobj.shared_ciphers()

    def compression(self):
        return self._sslobj.compression()

    def version(self):
        return self._sslobj.version()

    def selected_alpn_protocol(self):
        return self._sslobj.selected_alpn_protocol()

    def get_channel_binding(self, cb_type: str = "tls-unique"):
        return self._sslobj.get_channel_binding(cb_type)

    @property
    def session(self):
        return self._sslobj.session

    @property
    def session_reused(self) -> bool:
        return self._sslobj.session_reused

    def close(self) -> None:
        """Close the socket (no close_notify, as ``SSLSocket.close``); later once makefile() objects are gone."""
        self._closed = True
        if self._io_refs <= 0 and self._sock is not None and not self._real_closed:
            self._real_closed = True
            self._sock.close()

    def fileno(self) -> int:
        """The socket's readiness fd (it does not see decrypted bytes already buffered: ``pending()``)."""
        return self._sock.fileno() if self._sock is not None else -1

    def __getattr__(self, name):  # timeouts, names, options, shutdown: the socket's
        if name.startswith("__") or self.__dict__.get("_sock") is None:
            raise AttributeError(name)
        return getattr(self._sock, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tunstack TLS {self.version() or 'handshaking'} over {self._sock!r}>"

    # ------------------------------------------------------------ helpers
    def _check_open(self) -> None:
        if self._real_closed or self._sock is None:
            raise OSError(errno.EBADF, "Bad file descriptor")

    @staticmethod
    def _no_flags(flags: int, call: str) -> None:
        if flags:
            raise ValueError(f"non-zero flags not allowed in calls to {call}() on TlsSocket")
