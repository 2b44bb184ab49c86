"""tunstack: a pure-Python TCP/IP stack in user space over a Linux TUN device."""
from .runtime.stack import Stack
from .socket import socket
from . import udpsocket  # noqa: F401 - registers SOCK_DGRAM in Stack.socket_types
from . import netapi  # noqa: F401,E402  (adds Stack.create_connection, create_server, getaddrinfo, ...)
from .tcp.config import TcpConfig

__version__ = "0.1.0"
__all__ = ["Stack", "socket", "TcpConfig", "__version__"]
