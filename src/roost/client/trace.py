"""One-line descriptions of packets for debug logs, in the shape Mosquitto's ``-d`` prints."""

from __future__ import annotations

from roost.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)


def describe(packet: Packet) -> str:
    """One line for ``packet``, e.g. "PUBLISH (d0, q1, r0, m3, 'a/b', ... (5 bytes))"."""
    name = type(packet).__name__.upper()
    if isinstance(packet, Publish):
        return (
            f"{name} (d{packet.dup:d}, q{packet.qos}, r{packet.retain:d}, m{packet.packet_id},"
            f" '{packet.topic}', ... ({len(packet.payload)} bytes))"
        )
    if isinstance(packet, Connect):
        return (
            f"{name} (p{packet.protocol_level}, c{packet.clean_start:d}, k{packet.keep_alive},"
            f" id '{packet.client_id}')"
        )
    if isinstance(packet, Connack):
        return f"{name} (session present {packet.session_present:d}, rc {packet.reason_code})"
    if isinstance(packet, Puback | Pubrec | Pubrel | Pubcomp):
        return f"{name} (m{packet.packet_id}, rc{packet.reason_code})"
    if isinstance(packet, Subscribe):
        filters = ", ".join(f"{s.topic_filter} (QoS {s.qos})" for s in packet.subscriptions)
        return f"{name} (m{packet.packet_id}) {filters}"
    if isinstance(packet, Suback | Unsuback):
        return f"{name} (m{packet.packet_id}, rc {list(packet.reason_codes)})"
    if isinstance(packet, Unsubscribe):
        return f"{name} (m{packet.packet_id}) {', '.join(packet.topic_filters)}"
    if isinstance(packet, Disconnect):
        return f"{name} (rc {packet.reason_code})"
    if isinstance(packet, Auth):
        return f"{name} (rc 0x{packet.reason_code:02X}, {packet.authentication_method})"
    return name
