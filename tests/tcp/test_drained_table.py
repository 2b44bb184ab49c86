"""After a run of sequential connections and 2 MSL, nothing of them is left alive (issue 12: memory comes back).

Two hosts in virtual time: the server (B) answers each request and closes first, so every connection
passes through TIME-WAIT on B. Once 2 MSL has passed, the layer's tables, timer heap and listener
queues are empty, and no object a connection was made of (Connection, its parts, TIME-WAIT records)
is reachable any more: counted with the garbage collector's view of every live container object."""
import gc
import sys
from collections import Counter

from stack.sim import Simulation
from stack.tcp.config import TcpConfig
from stack.tcp.states import State

# the objects a connection is made of (one of each or more per connection while it lives)
PER_CONNECTION = {"Connection", "TimeWaitRecord", "Reassembler", "RttEstimator", "RttSampler", "LossRecovery",
                  "Timers", "Cubic", "NewReno", "Reno"}
N = 40
MSL = 5.0


def live_counts() -> Counter:
    gc.collect()
    return Counter(name for o in gc.get_objects() if (name := type(o).__name__) in PER_CONNECTION)


def one_exchange(sim: Simulation, lst) -> None:
    """A connects, sends a request; B accepts, answers and closes first; A reads to EOF and closes."""
    client = sim.connect(sim.a, 80)
    assert sim.run(until=sim.now + 5, condition=lambda: client.state is State.ESTABLISHED)
    sim.send(sim.a, client, b"GET / HTTP/1.0\r\n\r\n")
    assert sim.run(until=sim.now + 5, condition=lambda: lst.readable)
    server = lst.accept()
    assert sim.run(until=sim.now + 5, condition=lambda: bool(server.rcvbuf))
    sim.recv(sim.b, server)
    sim.send(sim.b, server, b"HTTP/1.0 200 OK\r\n\r\nhello")
    sim.close(sim.b, server)
    assert sim.run(until=sim.now + 5, condition=lambda: client.state is State.CLOSE_WAIT)
    assert sim.recv(sim.a, client).endswith(b"hello")
    sim.close(sim.a, client)
    assert sim.run(until=sim.now + 5, condition=lambda: client.state is State.CLOSED)


def test_a_drained_table_leaves_no_per_connection_object_alive():
    config = TcpConfig(msl=MSL)
    sim = Simulation(seed=3, config_a=config, config_b=config)
    lst = sim.listen(sim.b, 80)
    before = live_counts()
    for _ in range(N):
        one_exchange(sim, lst)
    tcp = sim.b.tcp
    in_time_wait = sum(1 for c in tcp.conns.values() if c.state is State.TIME_WAIT)
    assert in_time_wait == N                    # the server closed first: all of them wait 2 MSL
    assert live_counts()["TimeWaitRecord"] == N  # as compact records

    sim.run(until=sim.now + 2 * MSL + 1)

    for host in (sim.a, sim.b):
        t = host.tcp
        assert t.conns == {} and t._time_wait == {} and t._timers == [] and t._send_order == []
        assert t._acks_due == {}
    assert lst.syn_queue == {} and not lst.accept_queue and not lst.young
    assert live_counts() == before              # nothing of the 40 connections is reachable


def test_compact_gives_back_the_room_a_drained_table_kept():
    """A dict keeps room for its largest size; ``TcpLayer.compact`` (run by the runtime's trim) sizes it anew."""
    config = TcpConfig(msl=MSL)
    sim = Simulation(seed=4, config_a=config, config_b=config)
    lst = sim.listen(sim.b, 80)
    for _ in range(N):
        one_exchange(sim, lst)
    sim.run(until=sim.now + 2 * MSL + 1)
    tcp = sim.b.tcp
    assert tcp.conns == {} and sys.getsizeof(tcp.conns) > sys.getsizeof({})  # empty, still sized for 40
    tables = tcp.conns, tcp._time_wait
    tcp.compact()
    assert tcp.conns == {} and sys.getsizeof(tcp.conns) == sys.getsizeof({})
    # the same objects: a table made anew after a burst would sit among the burst's freed memory
    assert (tcp.conns, tcp._time_wait) == tables and tcp.conns is tables[0] and tcp._time_wait is tables[1]
    assert sys.getsizeof(tcp._time_wait) == sys.getsizeof({})
    one_exchange(sim, lst)                      # and the layer works on with its resized tables
    assert len(tcp.conns) == len(tcp._time_wait) == 1


def test_shrink_keeps_the_entries_in_their_order_and_frees_the_room():
    from stack.tcp.layer import shrink
    table = {i: str(i) for i in range(5000)}
    for i in range(10, 5000):
        del table[i]
    big = sys.getsizeof(table)
    shrink(table)
    assert list(table.items()) == [(i, str(i)) for i in range(10)]
    assert sys.getsizeof(table) < big // 50
    young = set(range(5000))
    young.difference_update(range(10, 5000))
    big = sys.getsizeof(young)
    shrink(young)
    assert young == set(range(10)) and sys.getsizeof(young) < big // 50


def test_connections_go_by_reference_counting_alone():
    """No reference cycle holds a connection: with the garbage collector off, a drained table leaves none.
    (A cycle through its loss recovery's trace methods once left every Connection to the collector's full
    passes, which come rarely while thousands of TIME-WAIT records live: memory piled up meanwhile.)"""
    config = TcpConfig(msl=MSL)
    sim = Simulation(seed=5, config_a=config, config_b=config)
    lst = sim.listen(sim.b, 80)
    gc.collect()
    gc.disable()
    try:
        before = Counter(n for o in gc.get_objects() if (n := type(o).__name__) in PER_CONNECTION)
        for _ in range(N):
            one_exchange(sim, lst)
        sim.run(until=sim.now + 2 * MSL + 1)
        after = Counter(n for o in gc.get_objects() if (n := type(o).__name__) in PER_CONNECTION)
    finally:
        gc.enable()
    assert after == before
