"""Student-style solutions (GOOD) and typical mistakes (MUTANTS) for every exercise.

A mutant is a good solution with one edit, ``(old, new)``: the test checks that ``old`` is in
the good source, so the mutant stays the mistake it names. Each mutant lists the check that
must catch it and a fragment its step trace must show.
"""

GOOD = {}

GOOD["checksum"] = '''
def checksum(data):
    if len(data) % 2:
        data = bytes(data) + b"\\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
'''

GOOD["seq"] = '''
MOD, HALF = 2**32, 2**31

def seq_lt(a, b):
    return a != b and (b - a) % MOD < HALF

def seq_le(a, b):
    return (b - a) % MOD < HALF

def seq_gt(a, b):
    return seq_lt(b, a)

def seq_ge(a, b):
    return seq_le(b, a)
'''

GOOD["reassembler"] = '''
MOD = 2**32

class Reassembler:
    def __init__(self, rcv_nxt):
        self._isn = rcv_nxt
        self._pos = 0
        self._held = {}
        self._fin_at = None
        self._fin_done = False
        self._recent = []

    @property
    def rcv_nxt(self):
        return (self._isn + self._pos + self._fin_done) % MOD

    def _abs(self, seq):
        d = (seq - (self._isn + self._pos)) % MOD
        if d >= 2**31:
            d -= MOD
        return self._pos + d

    def insert(self, seq, data, fin=False):
        start = self._abs(seq)
        if fin:
            self._fin_at = start + len(data)
        for i, b in enumerate(data):
            if start + i >= self._pos:
                self._held.setdefault(start + i, b)
        if data and start + len(data) > self._pos:
            self._recent.insert(0, max(start, self._pos))
        out = bytearray()
        while self._pos in self._held:
            out.append(self._held.pop(self._pos))
            self._pos += 1
        if self._fin_at is not None and self._pos == self._fin_at:
            self._fin_done = True
        return bytes(out)

    def sack_blocks(self):
        runs = []
        for p in sorted(self._held):
            if runs and runs[-1][1] == p:
                runs[-1][1] = p + 1
            else:
                runs.append([p, p + 1])
        order = []
        for s in self._recent:
            for r in runs:
                if r[0] <= s < r[1] and r not in order:
                    order.append(r)
        return [((self._isn + a) % MOD, (self._isn + b) % MOD) for a, b in order[:4]]
'''

GOOD["rtt"] = '''
class RttEstimator:
    def __init__(self, initial_rto=1.0, min_rto=0.2, max_rto=120.0, granularity=0.001):
        self.min_rto, self.max_rto, self.granularity = min_rto, max_rto, granularity
        self.srtt = None
        self.rttvar = None
        self.rto = initial_rto
        self.backoff = 0

    def sample(self, r):
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        self.rto = min(max(self.srtt + max(self.granularity, 4 * self.rttvar), self.min_rto), self.max_rto)
        self.backoff = 0

    def current_rto(self):
        return min(self.rto * 2 ** self.backoff, self.max_rto)

    def on_timeout(self):
        self.backoff += 1
'''

GOOD["timer"] = '''
class RetransmissionTimer:
    def __init__(self, rtt):
        self.rtt = rtt
        self.deadline = None
        self.sent = []

    def on_send(self, seq, end, now, retransmission=False):
        if self.deadline is None:
            self.deadline = now + self.rtt.current_rto()
        if retransmission:
            self.sent = [(e, t) for e, t in self.sent if e <= seq]
        else:
            self.sent.append((end, now))

    def on_ack(self, ack, now, all_acked):
        covered = [t for e, t in self.sent if e <= ack]
        if covered:
            self.rtt.sample(now - covered[-1])
        self.sent = [(e, t) for e, t in self.sent if e > ack]
        if all_acked:
            self.deadline = None
        else:
            self.deadline = now + self.rtt.current_rto()

    def on_expire(self, now):
        self.rtt.on_timeout()
        self.deadline = now + self.rtt.current_rto()
'''

GOOD["reno"] = '''
class Reno:
    def __init__(self, mss):
        self.mss = mss
        self.cwnd = 2 * mss if mss > 2190 else 3 * mss if mss > 1095 else 4 * mss
        self.ssthresh = 2**31 - 1
        self.dupacks = 0
        self.in_recovery = False

    def on_ack(self, acked, flight_size):
        self.dupacks = 0
        if self.in_recovery:
            self.in_recovery = False
            self.cwnd = self.ssthresh
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.mss)
        else:
            self.cwnd += max(1, self.mss * self.mss // self.cwnd)

    def on_dupack(self, flight_size):
        if self.in_recovery:
            self.cwnd += self.mss
            return False
        self.dupacks += 1
        if self.dupacks == 3:
            self.ssthresh = max(flight_size // 2, 2 * self.mss)
            self.cwnd = self.ssthresh + 3 * self.mss
            self.in_recovery = True
            return True
        return False

    def on_rto(self, flight_size):
        self.ssthresh = max(flight_size // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.dupacks = 0
        self.in_recovery = False
'''

GOOD["acceptable"] = '''
MOD = 2**32

def inside(x, low, size):
    return (x - low) % MOD < size

def acceptable(seg_seq, seg_len, rcv_nxt, rcv_wnd):
    if seg_len == 0 and rcv_wnd == 0:
        return seg_seq == rcv_nxt
    if seg_len == 0:
        return inside(seg_seq, rcv_nxt, rcv_wnd)
    if rcv_wnd == 0:
        return False
    return inside(seg_seq, rcv_nxt, rcv_wnd) or inside(seg_seq + seg_len - 1, rcv_nxt, rcv_wnd)
'''

GOOD["window"] = '''
def usable_window(snd_una, snd_nxt, snd_wnd, cwnd):
    in_flight = (snd_nxt - snd_una) % 2**32
    return max(0, min(snd_wnd, cwnd) - in_flight)
'''

GOOD["epoll"] = '''
import select

def ep_poll_callback(item, key, ready, rdllist):
    if item.disabled:
        return False
    wanted = item.events | select.EPOLLERR | select.EPOLLHUP
    if key and not key & wanted:
        return False
    if not ready & wanted:
        return False
    if not item.on_rdllist:
        item.on_rdllist = True
        rdllist.append(item)
    return True
'''

# (exercise, mistake, [(old, new), ...], the check that catches it, a fragment of its trace)
MUTANTS = [
    ("checksum", "no_end_around_carry",
     [("    while total >> 16:\n        total = (total & 0xFFFF) + (total >> 16)\n", "    total &= 0xFFFF\n")],
     "end_around_carry", "checksum(ffff0001) -> 0xffff"),
    ("checksum", "odd_byte_as_low_byte",
     [('        data = bytes(data) + b"\\x00"', '        data = bytes(data[:-1]) + b"\\x00" + bytes(data[-1:])')],
     "odd_length_padding", "expected 0xfbfd"),
    ("checksum", "no_final_complement", [("    return ~total & 0xFFFF", "    return total & 0xFFFF")],
     "rfc1071_example", "expected 0x220d, got 0xddf2"),
    ("checksum", "little_endian_words", [("(data[i] << 8) | data[i + 1]", "data[i] | (data[i + 1] << 8)")],
     "rfc1071_example", "expected 0x220d"),

    ("seq", "no_wraparound", [("return a != b and (b - a) % MOD < HALF", "return a < b"),
                              ("return (b - a) % MOD < HALF", "return a <= b")],
     "across_the_wrap", "seq_lt(0xffffff00, 0x00000010) -> False"),
    ("seq", "le_without_equal", [("return (b - a) % MOD < HALF", "return seq_lt(a, b)")],
     "equal_values", "seq_le(0x00000000, 0x00000000) -> False"),
    ("seq", "gt_as_not_lt", [("    return seq_lt(b, a)", "    return not seq_lt(a, b)")],
     "equal_values", "seq_gt(0x00000000, 0x00000000) -> True"),

    ("reassembler", "drops_partly_old_segment",
     [("        start = self._abs(seq)\n", "        start = self._abs(seq)\n        if start < self._pos:\n"
                                            "            return b''\n")],
     "partly_old_segment", "insert(1001, b'bcdef') -> b''"),
    ("reassembler", "sack_in_sequence_order", [("        order = []\n", "        order = list(runs)\n")],
     "sack_most_recent_first", "r.sack_blocks() -> [(1050, 1060), (1100, 1110), (1200, 1210)]"),
    ("reassembler", "no_wraparound", [("        d = (seq - (self._isn + self._pos)) % MOD\n",
                                       "        d = seq - (self._isn + self._pos)\n")],
     "wraparound", "r.sack_blocks() -> []"),
    ("reassembler", "more_than_four_blocks", [("order[:4]", "order")],
     "sack_at_most_four", "expected [(600, 610), (500, 510), (400, 410), (300, 310)]"),
    # caught only inside the stack: the unit scenarios' FIN always rides on data
    ("reassembler", "bare_fin_forgotten", [("        if fin:\n            self._fin_at", "        if fin and data:\n            self._fin_at")],
     "fin_out_of_order_through_stack", "after 0-100 (fills the hole): the host's ACKs as (ack offset, SACK blocks as offsets) -> [(200, [])]"),

    ("rtt", "srtt_before_rttvar",
     [("            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)\n"
       "            self.srtt = 0.875 * self.srtt + 0.125 * r\n",
       "            self.srtt = 0.875 * self.srtt + 0.125 * r\n"
       "            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)\n")],
     "rttvar_before_srtt", "expected 0.3875, got 0.3625"),
    ("rtt", "rto_not_doubled", [("        self.backoff += 1", "        pass")],
     "backoff_doubles", "expected 3, got 1.5"),
    ("rtt", "no_min_rto_floor", [("min(max(self.srtt + max(self.granularity, 4 * self.rttvar), self.min_rto), "
                                  "self.max_rto)", "min(self.srtt + max(self.granularity, 4 * self.rttvar), "
                                                   "self.max_rto)")],
     "min_rto_floor", "expected 0.2"),
    ("rtt", "backoff_kept_after_sample", [("        self.backoff = 0\n\n    def current_rto",
                                           "\n    def current_rto")],
     "sample_resets_backoff", "expected 1.25, got 5"),
    ("rtt", "first_rttvar_is_r", [("self.rttvar = r / 2", "self.rttvar = r")],
     "first_sample", "e.rttvar -> 0.5"),

    ("timer", "no_karn", [("            self.sent = [(e, t) for e, t in self.sent if e <= seq]\n", "            pass\n")],
     "karn_no_sample_after_retransmission", "tm.rtt.srtt (no sample taken) -> 1.05"),
    ("timer", "sample_from_oldest_segment", [("now - covered[-1]", "now - covered[0]")],
     "sample_from_newest_segment", "expected 0.1, got 0.12"),
    ("timer", "restarted_on_every_send", [("        if self.deadline is None:\n            self.deadline",
                                           "        if True:\n            self.deadline")],
     "start_on_first_send", "expected 1, got 1.4"),
    ("timer", "rto_not_doubled", [("        self.rtt.on_timeout()\n", "")],
     "backoff_on_expiry", "expected 3, got 2"),
    ("timer", "never_stopped", [("        if all_acked:\n            self.deadline = None\n        else:\n    ",
                                 "")],
     "stop_and_restart", "tm.deadline (stopped) -> 0.5"),

    ("reno", "ssthresh_from_cwnd", [("            self.ssthresh = max(flight_size // 2, 2 * self.mss)\n            self.cwnd = self.ssthresh + 3",
                                     "            self.ssthresh = max(self.cwnd // 2, 2 * self.mss)\n            self.cwnd = self.ssthresh + 3")],
     "third_dupack", "expected 6000, got 10000"),
    ("reno", "full_mss_per_ack_in_ca", [("max(1, self.mss * self.mss // self.cwnd)", "self.mss")],
     "congestion_avoidance", "expected 4250, got 5000"),
    ("reno", "no_deflate_after_recovery", [("            self.cwnd = self.ssthresh\n            return\n",
                                            "            return\n")],
     "recovery_inflate_deflate", "expected 6000, got 10000"),
    # caught only inside the stack: the unit scenarios have one loss each
    ("reno", "dupacks_not_reset_by_new_ack", [("        self.dupacks = 0\n        if self.in_recovery:\n",
                                               "        if self.in_recovery:\n")],
     "second_loss_through_stack", "after duplicate ACK 4 of the second loss: segments sent (offsets in segments of 536 bytes) -> []"),
    ("reno", "rto_back_to_initial_window", [("        self.cwnd = self.mss\n        self.dupacks",
                                             "        self.cwnd = 4 * self.mss\n        self.dupacks")],
     "rto_loss_window", "expected 1000, got 4000"),

    ("acceptable", "right_edge_inclusive", [("    return (x - low) % MOD < size", "    return (x - low) % MOD <= size")],
     "case2_zero_len_open_window", "acceptable(seg_seq=1100, seg_len=0, rcv_nxt=1000, rcv_wnd=100) -> True"),
    ("acceptable", "start_only", [(" or inside(seg_seq + seg_len - 1, rcv_nxt, rcv_wnd)", "")],
     "case4_data_open_window", "acceptable(seg_seq=990, seg_len=11, rcv_nxt=1000, rcv_wnd=100) -> False"),
    ("acceptable", "no_wraparound", [("    return (x - low) % MOD < size", "    return low <= x < low + size")],
     "wraparound", "expected True, got False"),
    ("acceptable", "data_into_zero_window_at_rcv_nxt", [("    if seg_len == 0 and rcv_wnd == 0:", "    if rcv_wnd == 0:")],
     "case3_data_zero_window", "acceptable(seg_seq=1000, seg_len=1, rcv_nxt=1000, rcv_wnd=0) -> True"),

    ("window", "ignores_cwnd", [("min(snd_wnd, cwnd)", "snd_wnd")],
     "cwnd_limits", "expected 1460, got"),
    ("window", "negative_window", [("    return max(0, min(snd_wnd, cwnd) - in_flight)",
                                    "    return min(snd_wnd, cwnd) - in_flight")],
     "never_negative", "expected 0, got -4000"),
    ("window", "no_wraparound", [("(snd_nxt - snd_una) % 2**32", "(snd_nxt - snd_una)")],
     "wraparound", "usable_window(snd_una=4294966296, snd_nxt=1000"),
    ("window", "off_by_one", [("min(snd_wnd, cwnd) - in_flight)", "min(snd_wnd, cwnd) - in_flight - 1)")],
     "in_flight_uses_window", "expected 10600, got 10599"),

    ("epoll", "queued_twice", [("    if not item.on_rdllist:\n        item.on_rdllist = True\n        rdllist.append(item)",
                                "    item.on_rdllist = True\n    rdllist.append(item)")],
     "queued_at_most_once", "len(rdllist) -> 2"),
    ("epoll", "ignores_key", [("    if key and not key & wanted:\n        return False\n", "")],
     "unwanted_key_ignored", "key=OUT, ready=IN|OUT, rdllist) -> True"),
    ("epoll", "err_hup_only_when_asked", [("    wanted = item.events | select.EPOLLERR | select.EPOLLHUP",
                                           "    wanted = item.events")],
     "err_hup_always", "key=HUP, ready=HUP, rdllist) -> False"),
    ("epoll", "oneshot_ignored", [("    if item.disabled:\n        return False\n", "")],
     "oneshot_disabled", "expected False, got True"),
]


def mutant_source(slug: str, edits) -> str:
    src = GOOD[slug]
    for old, new in edits:
        assert old in src, f"mutant edit no longer applies to GOOD[{slug!r}]: {old!r}"
        src = src.replace(old, new)
    return src
