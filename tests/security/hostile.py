"""Hypothesis strategies for what a hostile client sends: packets valid, broken and random.

An ``Attack`` is one connection's bytes at one protocol level (3, 4 or 5), optionally
after a valid CONNECT (so the packets reach the connected state's handlers, not only
the CONNECT check), and the points at which they are cut into separate sends. Each
piece is one of:

* a valid packet of any kind from the codec's encoders (server-only kinds included),
* such a packet mutated: bits flipped, bytes set, inserted or deleted, the packet type
  byte replaced, the Remaining Length field rewritten (with any value, or with bytes
  that are no varint at all), the packet truncated,
* two packets spliced (the start of one, the end of another),
* random bytes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import strategies as st

from roost.codec import Connect
from roost.codec.primitives import encode_varint
from tests.codec.strategies import PACKETS, Strategy, connects, kinds_for, packets

LEVELS = (3, 4, 5)
# What a client may send after CONNECT; the rest (CONNECT again, and what only a server
# sends) ends a connection at once, so it is drawn less often to let others go deeper.
_CLIENT_KINDS = "publish puback pubrec pubrel pubcomp subscribe unsubscribe pingreq disconnect auth"
MUTATIONS = ("flip", "set", "insert", "delete", "type", "length", "truncate")


@dataclass(frozen=True)
class Attack:
    version: int
    connected: bool  # the data starts with a valid CONNECT
    data: bytes
    cuts: tuple[int, ...]  # offsets at which the data is split into sends

    def pieces(self) -> list[bytes]:
        bounds = [0, *self.cuts, len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _length_field_end(data: bytearray) -> int:
    """The end of the Remaining Length field of the packet at the start of ``data``."""
    end = 1
    while end < len(data) and end < 5 and data[end] & 0x80:
        end += 1
    return min(end + 1, len(data))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        if not buf:
            break
        kind = draw(st.sampled_from(MUTATIONS))
        index = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            buf[index] = draw(st.integers(0, 255))
        elif kind == "insert":
            buf[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[index : index + draw(st.integers(1, 8))]
        elif kind == "type":
            buf[0] = draw(st.integers(0, 255))
        elif kind == "length":
            field = draw(
                st.one_of(
                    st.integers(0, 268_435_455).map(encode_varint),
                    st.binary(min_size=1, max_size=5),
                )
            )
            buf[1 : _length_field_end(buf)] = field
        else:
            del buf[index:]
    return bytes(buf)


def _piece(version: int) -> Strategy[bytes]:
    kinds = [kind for kind in _CLIENT_KINDS.split() if kind in kinds_for(version)]
    from_clients = st.one_of([PACKETS[kind](version) for kind in kinds])
    valid = from_clients.map(lambda packet: packet.encode(version))
    encoded = packets(version).map(lambda packet: packet.encode(version))
    spliced = st.tuples(encoded, encoded, st.floats(0, 1), st.floats(0, 1)).map(
        lambda t: t[0][: int(len(t[0]) * t[2])] + t[1][int(len(t[1]) * t[3]) :]
    )
    # One in two pieces a valid packet a client sends, so that most attacks get some
    # way into a session before (or without) breaking a rule.
    return st.one_of(
        valid,
        valid,
        valid,
        encoded,
        encoded.flatmap(mutated),
        valid.flatmap(mutated),
        spliced,
        st.binary(min_size=1, max_size=64),
    )


def _opening_connect(version: int) -> Strategy[Connect]:
    plain = st.builds(
        lambda number, keep_alive, clean: Connect(f"fuzz-{number}", version, clean, keep_alive),
        st.integers(0, 999),
        st.integers(0, 300),
        st.booleans(),
    )
    # Mostly a plain CONNECT that is accepted; sometimes any valid one (a will, an
    # authentication method, properties), which may be refused.
    return st.one_of(plain, plain, connects(version))


@st.composite
def attacks(draw: st.DrawFn) -> Attack:
    version = draw(st.sampled_from(LEVELS))
    connected = draw(st.booleans())
    parts = [draw(_opening_connect(version)).encode(version)] if connected else []
    parts.extend(draw(st.lists(_piece(version), min_size=1, max_size=6)))
    data = b"".join(parts)
    cuts = draw(st.lists(st.integers(1, max(len(data) - 1, 1)), max_size=3, unique=True))
    return Attack(version, connected, data, tuple(sorted(cuts)))
