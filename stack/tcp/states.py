"""The eleven TCP states of RFC 9293 3.3.2."""
import enum


class State(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    @property
    def synchronized(self) -> bool:
        return self not in (State.CLOSED, State.LISTEN, State.SYN_SENT, State.SYN_RECEIVED)


class Closing(enum.IntFlag):
    """How far each direction has closed, beside ``State`` (one sub-state instead of four booleans).

    ``State`` alone cannot say it: a FIN queued behind data in ESTABLISHED before FIN-WAIT-1
    shows (a CLOSE in SYN-RECEIVED, RFC 9293 3.10.4), whether our FIN is on the wire yet, EOF
    still behind unread data in CLOSE-WAIT, or that nobody will read any more (close() vs shutdown).
    """
    NONE = 0
    FIN_QUEUED = enum.auto()    # the user closed or shut down writing: FIN goes after the data
    FIN_SENT = enum.auto()      # our FIN went out (at fin_seq)
    FIN_RECEIVED = enum.auto()  # the peer's FIN arrived: EOF once the receive buffer drains
    ORPHANED = enum.auto()      # close() called: nobody reads any more (data then -> RST)
    RCV_SHUT = enum.auto()      # shutdown(SHUT_RD): reading shut, the socket kept (Linux RCV_SHUTDOWN)


# the same bits as plain ints, for the per-segment paths (enum operators run Python code)
FIN_QUEUED, FIN_SENT, FIN_RECEIVED, ORPHANED, RCV_SHUT = (int(f) for f in (
    Closing.FIN_QUEUED, Closing.FIN_SENT, Closing.FIN_RECEIVED, Closing.ORPHANED, Closing.RCV_SHUT))
