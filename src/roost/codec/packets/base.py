"""What every packet class shares, and the fixed-header constants."""

from __future__ import annotations

from typing import ClassVar

# Control packet types (MQTT 5.0 section 2.1.2).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

# Protocol levels: MQTT 3.1 ("MQIsdp"), 3.1.1 and 5.0.
MQTT_3_1 = 3
MQTT_3_1_1 = 4
MQTT_5 = 5


class Packet:
    """A decoded MQTT control packet; ``encode(version)`` gives its bytes on the wire."""

    __slots__ = ()
    packet_type: ClassVar[int]

    def encode(self, version: int = MQTT_3_1_1) -> bytes:
        raise NotImplementedError
