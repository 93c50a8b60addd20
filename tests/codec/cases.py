"""The codec's table of valid raw-byte cases, written by hand from the OASIS specifications.

Every byte below was written from MQTT 3.1 (protocol name "MQIsdp", level 3), the OASIS
MQTT 3.1.1 standard (level 4) and the OASIS MQTT 5.0 standard (level 5), one comment per
field, and never produced by the encoder under test. One table drives decoding (whole,
one byte at a time, with trailing bytes) and encoding: ``canonical`` says whether
``packet.encode(version)`` must give back exactly these bytes. A non-canonical case is a
valid encoding the codec accepts but does not produce (a short form spelled long, or
properties in another order: "There is no significance in the order of Properties with
different Identifiers", MQTT 5.0 section 2.2.2.2).

Where a packet carries several properties, the canonical cases list them in the order
the encoder emits them (its per-packet property table), which the specification leaves
free; user properties keep their order and duplicates [MQTT-3.3.2-18].
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.codec import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)


@dataclass(frozen=True, slots=True)
class Case:
    """One valid packet: its bytes at ``version`` and the object they decode to."""

    id: str
    version: int
    raw: bytes
    packet: Packet
    canonical: bool = True


# A payload long enough to need a 2-byte and a 3-byte Remaining Length (section 2.1.4).
_PAYLOAD_200 = bytes(range(200))
_PAYLOAD_16381 = b"z" * 16381

CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------------ MQTT 3.1 (level 3)
    Case(
        "v3-connect-minimal",
        3,
        b"\x10"  # CONNECT, flags 0000
        b"\x10"  # remaining length 16
        b"\x00\x06MQIsdp"  # protocol name "MQIsdp"
        b"\x03"  # protocol level 3
        b"\x02"  # connect flags: clean session
        b"\x00\x3c"  # keep alive 60 s
        b"\x00\x02c1",  # client identifier "c1"
        Connect("c1", protocol_level=3, clean_start=True, keep_alive=60),
    ),
    Case(
        "v3-connect-will-username-password",
        3,
        b"\x10"  # CONNECT
        b"\x20"  # remaining length 32
        b"\x00\x06MQIsdp"  # protocol name "MQIsdp"
        b"\x03"  # protocol level 3
        b"\xee"  # flags: user name, password, will retain, will QoS 1, will, clean
        b"\x00\x0a"  # keep alive 10 s
        b"\x00\x02id"  # client identifier "id"
        b"\x00\x03w/t"  # will topic "w/t"
        b"\x00\x03bye"  # will message "bye"
        b"\x00\x01u"  # user name "u"
        b"\x00\x01p",  # password "p"
        Connect("id", 3, True, 10, "u", b"p", Will("w/t", b"bye", 1, True)),
    ),
    Case(
        "v3-connack-accepted",
        3,
        b"\x20"  # CONNACK
        b"\x02"  # remaining length 2
        b"\x00"  # reserved (3.1 has no session present flag)
        b"\x00",  # return code 0: accepted
        Connack(False, 0),
    ),
    Case(
        "v3-connack-reserved-byte-ignored",
        3,
        b"\x20"  # CONNACK
        b"\x02"  # remaining length 2
        b"\x01"  # 3.1 reserves this byte ("not used"): not a session present flag
        b"\x05",  # return code 5: not authorized
        Connack(False, 5),
        canonical=False,
    ),
    Case(
        "v3-publish-qos0",
        3,
        b"\x30"  # PUBLISH, DUP 0, QoS 0, RETAIN 0
        b"\x07"  # remaining length 7
        b"\x00\x03a/b"  # topic name "a/b"
        b"hi",  # payload
        Publish("a/b", b"hi"),
    ),
    Case(
        "v3-publish-qos1-dup-retain",
        3,
        b"\x3b"  # PUBLISH, DUP 1, QoS 1, RETAIN 1
        b"\x05"  # remaining length 5
        b"\x00\x01t"  # topic name "t"
        b"\x12\x34",  # packet identifier 0x1234; empty payload
        Publish("t", b"", 1, True, True, 0x1234),
    ),
    Case(
        "v3-puback",
        3,
        b"\x40"  # PUBACK
        b"\x02"  # remaining length 2
        b"\x00\x01",  # packet identifier 1
        Puback(1),
    ),
    Case(
        "v3-pubrec",
        3,
        b"\x50"  # PUBREC
        b"\x02"  # remaining length 2
        b"\x00\x02",  # packet identifier 2
        Pubrec(2),
    ),
    Case(
        "v3-pubrel",
        3,
        b"\x62"  # PUBREL, flags 0010
        b"\x02"  # remaining length 2
        b"\x00\x03",  # packet identifier 3
        Pubrel(3),
    ),
    Case(
        "v3-pubcomp",
        3,
        b"\x70"  # PUBCOMP
        b"\x02"  # remaining length 2
        b"\x00\x04",  # packet identifier 4
        Pubcomp(4),
    ),
    Case(
        "v3-subscribe",
        3,
        b"\x82"  # SUBSCRIBE, flags 0010
        b"\x0c"  # remaining length 12
        b"\x00\x0a"  # packet identifier 10
        b"\x00\x03a/+"  # topic filter "a/+"
        b"\x01"  # requested QoS 1
        b"\x00\x01#"  # topic filter "#"
        b"\x02",  # requested QoS 2
        Subscribe(10, (Subscription("a/+", 1), Subscription("#", 2))),
    ),
    Case(
        "v3-suback",
        3,
        b"\x90"  # SUBACK
        b"\x05"  # remaining length 5
        b"\x00\x0a"  # packet identifier 10
        b"\x01"  # granted QoS 1
        b"\x02"  # granted QoS 2
        b"\x00",  # granted QoS 0
        Suback(10, (1, 2, 0)),
    ),
    Case(
        "v3-unsubscribe",
        3,
        b"\xa2"  # UNSUBSCRIBE, flags 0010
        b"\x05"  # remaining length 5
        b"\x00\x0b"  # packet identifier 11
        b"\x00\x01a",  # topic filter "a"
        Unsubscribe(11, ("a",)),
    ),
    Case(
        "v3-unsuback",
        3,
        b"\xb0"  # UNSUBACK
        b"\x02"  # remaining length 2
        b"\x00\x0b",  # packet identifier 11
        Unsuback(11),
    ),
    Case(
        "v3-pingreq",
        3,
        b"\xc0"  # PINGREQ
        b"\x00",  # remaining length 0
        Pingreq(),
    ),
    Case(
        "v3-pingresp",
        3,
        b"\xd0"  # PINGRESP
        b"\x00",  # remaining length 0
        Pingresp(),
    ),
    Case(
        "v3-disconnect",
        3,
        b"\xe0"  # DISCONNECT
        b"\x00",  # remaining length 0
        Disconnect(),
    ),
    # ---------------------------------------------------------------- MQTT 3.1.1 (level 4)
    Case(
        "v4-connect-minimal-empty-client-id",
        4,
        b"\x10"  # CONNECT
        b"\x0c"  # remaining length 12
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x04"  # protocol level 4
        b"\x02"  # connect flags: clean session
        b"\x00\x3c"  # keep alive 60 s
        b"\x00\x00",  # client identifier "" [MQTT-3.1.3-6]
        Connect("", 4, True, 60),
    ),
    Case(
        "v4-connect-bridge-try-private",
        4,
        b"\x10"  # CONNECT
        b"\x0e"  # remaining length 14
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x84"  # protocol level 4 | 0x80: a bridge (Mosquitto's try_private; no spec)
        b"\x00"  # connect flags: none
        b"\x00\x3c"  # keep alive 60 s
        b"\x00\x02br",  # client identifier "br"
        Connect("br", 4, False, 60, bridge=True),
    ),
    Case(
        "v4-connect-will-qos2-username",
        4,
        b"\x10"  # CONNECT
        b"\x1a"  # remaining length 26
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x04"  # protocol level 4
        b"\x94"  # flags: user name, will QoS 2, will; clean session 0
        b"\x00\x00"  # keep alive 0 (off)
        b"\x00\x03cid"  # client identifier "cid"
        b"\x00\x01a"  # will topic "a"
        b"\x00\x00"  # will message: empty
        b"\x00\x04user",  # user name "user"
        Connect("cid", 4, False, 0, "user", None, Will("a", b"", 2, False)),
    ),
    Case(
        "v4-connect-username-password",
        4,
        b"\x10"  # CONNECT
        b"\x14"  # remaining length 20
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x04"  # protocol level 4
        b"\xc2"  # flags: user name, password, clean session
        b"\x01\x2c"  # keep alive 300 s
        b"\x00\x01x"  # client identifier "x"
        b"\x00\x01u"  # user name "u"
        b"\x00\x02\x00\xff",  # password: binary 00 FF
        Connect("x", 4, True, 300, "u", b"\x00\xff"),
    ),
    Case(
        "v4-connack-session-present",
        4,
        b"\x20"  # CONNACK
        b"\x02"  # remaining length 2
        b"\x01"  # acknowledge flags: session present
        b"\x00",  # return code 0: accepted
        Connack(True, 0),
    ),
    Case(
        "v4-connack-refused",
        4,
        b"\x20"  # CONNACK
        b"\x02"  # remaining length 2
        b"\x00"  # acknowledge flags: none
        b"\x05",  # return code 5: not authorized
        Connack(False, 5),
    ),
    Case(
        "v4-publish-qos2",
        4,
        b"\x34"  # PUBLISH, QoS 2
        b"\x0a"  # remaining length 10
        b"\x00\x03x/y"  # topic name "x/y"
        b"\x00\x07"  # packet identifier 7
        b"\x00\x01\x02",  # payload
        Publish("x/y", b"\x00\x01\x02", 2, False, False, 7),
    ),
    Case(
        "v4-publish-utf8-topic-retain",
        4,
        b"\x31"  # PUBLISH, QoS 0, RETAIN
        b"\x08"  # remaining length 8
        b"\x00\x06"  # topic length 6 bytes
        b"\xc3\xa4"  # U+00E4 (two bytes)
        b"/"  # level separator
        b"\xe2\x82\xac",  # U+20AC (three bytes); empty payload
        Publish("\u00e4/\u20ac", b"", 0, True),
    ),
    Case(
        "v4-publish-bom-kept",
        4,
        b"\x30"  # PUBLISH, QoS 0
        b"\x07"  # remaining length 7
        b"\x00\x04"  # topic length 4
        b"\xef\xbb\xbf"  # U+FEFF, never stripped [MQTT-1.5.4-3]
        b"a"  # "a"
        b"!",  # payload
        Publish("\ufeffa", b"!"),
    ),
    Case(
        "v4-publish-2-byte-remaining-length",
        4,
        (
            b"\x30"  # PUBLISH, QoS 0
            b"\xcb\x01"  # remaining length 203 = 0x4B + 1 * 128
            b"\x00\x01t"  # topic name "t"
        )
        + _PAYLOAD_200,  # payload: 200 bytes
        Publish("t", _PAYLOAD_200),
    ),
    Case(
        "v4-publish-3-byte-remaining-length",
        4,
        (
            b"\x30"  # PUBLISH, QoS 0
            b"\x80\x80\x01"  # remaining length 16384 = 1 * 128 * 128
            b"\x00\x01t"  # topic name "t"
        )
        + _PAYLOAD_16381,  # payload: 16381 bytes
        Publish("t", _PAYLOAD_16381),
    ),
    Case(
        "v4-puback-max-id",
        4,
        b"\x40"  # PUBACK
        b"\x02"  # remaining length 2
        b"\xff\xff",  # packet identifier 65535
        Puback(65535),
    ),
    Case(
        "v4-pubrec",
        4,
        b"\x50"  # PUBREC
        b"\x02"  # remaining length 2
        b"\x01\x00",  # packet identifier 256
        Pubrec(256),
    ),
    Case(
        "v4-pubrel",
        4,
        b"\x62"  # PUBREL, flags 0010
        b"\x02"  # remaining length 2
        b"\x00\x01",  # packet identifier 1
        Pubrel(1),
    ),
    Case(
        "v4-pubcomp",
        4,
        b"\x70"  # PUBCOMP
        b"\x02"  # remaining length 2
        b"\x00\x01",  # packet identifier 1
        Pubcomp(1),
    ),
    Case(
        "v4-subscribe-sys",
        4,
        b"\x82"  # SUBSCRIBE, flags 0010
        b"\x0b"  # remaining length 11
        b"\x00\x01"  # packet identifier 1
        b"\x00\x06$SYS/#"  # topic filter "$SYS/#"
        b"\x00",  # requested QoS 0
        Subscribe(1, (Subscription("$SYS/#", 0),)),
    ),
    Case(
        "v4-subscribe-wildcards",
        4,
        b"\x82"  # SUBSCRIBE, flags 0010
        b"\x10"  # remaining length 16
        b"\x00\x02"  # packet identifier 2
        b"\x00\x01/"  # topic filter "/" (valid, section 4.7.3)
        b"\x01"  # requested QoS 1
        b"\x00\x07+/a/+/#"  # topic filter "+/a/+/#"
        b"\x02",  # requested QoS 2
        Subscribe(2, (Subscription("/", 1), Subscription("+/a/+/#", 2))),
    ),
    Case(
        "v4-suback-failure",
        4,
        b"\x90"  # SUBACK
        b"\x05"  # remaining length 5
        b"\x00\x01"  # packet identifier 1
        b"\x00"  # granted QoS 0
        b"\x80"  # failure [MQTT-3.9.3-2]
        b"\x02",  # granted QoS 2
        Suback(1, (0, 0x80, 2)),
    ),
    Case(
        "v4-unsubscribe-two",
        4,
        b"\xa2"  # UNSUBSCRIBE, flags 0010
        b"\x0c"  # remaining length 12
        b"\x00\x02"  # packet identifier 2
        b"\x00\x03a/b"  # topic filter "a/b"
        b"\x00\x03c/#",  # topic filter "c/#"
        Unsubscribe(2, ("a/b", "c/#")),
    ),
    Case(
        "v4-unsuback",
        4,
        b"\xb0"  # UNSUBACK
        b"\x02"  # remaining length 2
        b"\x00\x02",  # packet identifier 2
        Unsuback(2),
    ),
    Case(
        "v4-pingreq",
        4,
        b"\xc0"  # PINGREQ
        b"\x00",  # remaining length 0
        Pingreq(),
    ),
    Case(
        "v4-pingresp",
        4,
        b"\xd0"  # PINGRESP
        b"\x00",  # remaining length 0
        Pingresp(),
    ),
    Case(
        "v4-disconnect",
        4,
        b"\xe0"  # DISCONNECT
        b"\x00",  # remaining length 0
        Disconnect(),
    ),
    # ------------------------------------------------------------------- MQTT 5 (level 5)
    Case(
        "v5-connect-minimal",
        5,
        b"\x10"  # CONNECT
        b"\x0e"  # remaining length 14
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x05"  # protocol version 5
        b"\x02"  # connect flags: clean start
        b"\x00\x3c"  # keep alive 60 s
        b"\x00"  # property length 0
        b"\x00\x01a",  # client identifier "a"
        Connect("a", 5, True, 60),
    ),
    Case(
        "v5-connect-all-properties",
        5,
        b"\x10"  # CONNECT
        b"\x7a"  # remaining length 122
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x05"  # protocol version 5
        b"\xce"  # flags: user name, password, will QoS 1, will, clean start
        b"\x00\x1e"  # keep alive 30 s
        b"\x32"  # property length 50
        b"\x11\x00\x00\x00\x78"  # session expiry interval 120
        b"\x15\x00\x01m"  # authentication method "m"
        b"\x16\x00\x02\x01\x02"  # authentication data 01 02
        b"\x17\x00"  # request problem information 0
        b"\x19\x01"  # request response information 1
        b"\x21\x00\x0a"  # receive maximum 10
        b"\x22\x00\x05"  # topic alias maximum 5
        b"\x27\x00\x00\x10\x00"  # maximum packet size 4096
        b"\x26\x00\x01k\x00\x011"  # user property k=1
        b"\x26\x00\x01a\x00\x012"  # user property a=2
        b"\x26\x00\x01k\x00\x011"  # user property k=1 again (order and duplicates kept)
        b"\x00\x03cid"  # client identifier "cid"
        b"\x24"  # will property length 36
        b"\x01\x01"  # payload format indicator 1 (UTF-8)
        b"\x02\x00\x00\x00\x3c"  # message expiry interval 60
        b"\x03\x00\x04text"  # content type "text"
        b"\x08\x00\x03r/p"  # response topic "r/p"
        b"\x09\x00\x01*"  # correlation data "*"
        b"\x18\x00\x00\x00\x05"  # will delay interval 5
        b"\x26\x00\x01w\x00\x01x"  # user property w=x
        b"\x00\x01w"  # will topic "w"
        b"\x00\x04gone"  # will payload "gone"
        b"\x00\x04user"  # user name "user"
        b"\x00\x02pw",  # password "pw"
        Connect(
            "cid",
            5,
            True,
            30,
            "user",
            b"pw",
            Will(
                "w",
                b"gone",
                1,
                False,
                will_delay_interval=5,
                payload_format_indicator=1,
                message_expiry_interval=60,
                content_type="text",
                response_topic="r/p",
                correlation_data=b"*",
                user_properties=(("w", "x"),),
            ),
            session_expiry_interval=120,
            receive_maximum=10,
            maximum_packet_size=4096,
            topic_alias_maximum=5,
            request_response_information=1,
            request_problem_information=0,
            authentication_method="m",
            authentication_data=b"\x01\x02",
            user_properties=(("k", "1"), ("a", "2"), ("k", "1")),
        ),
    ),
    Case(
        "v5-connect-password-without-username",
        5,
        b"\x10"  # CONNECT
        b"\x10"  # remaining length 16
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x05"  # protocol version 5
        b"\x42"  # flags: password (allowed without user name in 5.0, 3.1.2.9), clean start
        b"\x00\x3c"  # keep alive 60 s
        b"\x00"  # property length 0
        b"\x00\x00"  # client identifier ""
        b"\x00\x01s",  # password "s"
        Connect("", 5, True, 60, None, b"s"),
    ),
    Case(
        "v5-connect-will-retain-qos2",
        5,
        b"\x10"  # CONNECT
        b"\x14"  # remaining length 20
        b"\x00\x04MQTT"  # protocol name "MQTT"
        b"\x05"  # protocol version 5
        b"\x34"  # flags: will retain, will QoS 2, will; clean start 0
        b"\x00\x3c"  # keep alive 60 s
        b"\x00"  # property length 0
        b"\x00\x01c"  # client identifier "c"
        b"\x00"  # will property length 0
        b"\x00\x01t"  # will topic "t"
        b"\x00\x00",  # will payload: empty
        Connect("c", 5, False, 60, will=Will("t", b"", 2, True)),
    ),
    Case(
        "v5-connack-minimal",
        5,
        b"\x20"  # CONNACK
        b"\x03"  # remaining length 3
        b"\x00"  # acknowledge flags: none
        b"\x00"  # reason code 0x00: success
        b"\x00",  # property length 0
        Connack(),
    ),
    Case(
        "v5-connack-all-properties",
        5,
        b"\x20"  # CONNACK
        b"\x40"  # remaining length 64
        b"\x01"  # acknowledge flags: session present
        b"\x00"  # reason code 0x00: success
        b"\x3d"  # property length 61
        b"\x11\x00\x00\x0e\x10"  # session expiry interval 3600
        b"\x12\x00\x02id"  # assigned client identifier "id"
        b"\x13\x00\x1e"  # server keep alive 30
        b"\x15\x00\x01m"  # authentication method "m"
        b"\x16\x00\x00"  # authentication data: empty
        b"\x1a\x00\x02r/"  # response information "r/"
        b"\x1c\x00\x01s"  # server reference "s"
        b"\x1f\x00\x02ok"  # reason string "ok"
        b"\x21\x00\x14"  # receive maximum 20
        b"\x22\x00\x0a"  # topic alias maximum 10
        b"\x24\x01"  # maximum QoS 1
        b"\x25\x00"  # retain available 0
        b"\x27\x00\x01\x00\x00"  # maximum packet size 65536
        b"\x28\x00"  # wildcard subscription available 0
        b"\x29\x01"  # subscription identifiers available 1
        b"\x2a\x00"  # shared subscription available 0
        b"\x26\x00\x01x\x00\x00",  # user property x=""
        Connack(
            True,
            0,
            session_expiry_interval=3600,
            receive_maximum=20,
            maximum_qos=1,
            retain_available=0,
            maximum_packet_size=65536,
            assigned_client_identifier="id",
            topic_alias_maximum=10,
            reason_string="ok",
            wildcard_subscription_available=0,
            subscription_identifier_available=1,
            shared_subscription_available=0,
            server_keep_alive=30,
            response_information="r/",
            server_reference="s",
            authentication_method="m",
            authentication_data=b"",
            user_properties=(("x", ""),),
        ),
    ),
    Case(
        "v5-connack-not-authorized",
        5,
        b"\x20"  # CONNACK
        b"\x03"  # remaining length 3
        b"\x00"  # acknowledge flags: none
        b"\x87"  # reason code 0x87: not authorized
        b"\x00",  # property length 0
        Connack(False, 0x87),
    ),
    Case(
        "v5-connack-properties-reordered",
        5,
        b"\x20"  # CONNACK
        b"\x0e"  # remaining length 14
        b"\x00"  # acknowledge flags: none
        b"\x9c"  # reason code 0x9C: use another server
        b"\x0b"  # property length 11
        b"\x26\x00\x01a\x00\x01b"  # user property a=b (before the server reference)
        b"\x1c\x00\x01h",  # server reference "h"
        Connack(False, 0x9C, server_reference="h", user_properties=(("a", "b"),)),
        canonical=False,
    ),
    Case(
        "v5-publish-minimal",
        5,
        b"\x30"  # PUBLISH, QoS 0
        b"\x05"  # remaining length 5
        b"\x00\x01t"  # topic name "t"
        b"\x00"  # property length 0
        b"x",  # payload
        Publish("t", b"x"),
    ),
    Case(
        "v5-publish-all-properties",
        5,
        b"\x32"  # PUBLISH, QoS 1
        b"\x48"  # remaining length 72
        b"\x00\x03s/t"  # topic name "s/t"
        b"\x00\x05"  # packet identifier 5
        b"\x3b"  # property length 59
        b"\x01\x00"  # payload format indicator 0 (unspecified bytes)
        b"\x02\x00\x00\x01\x00"  # message expiry interval 256
        b"\x03\x00\x03a/b"  # content type "a/b"
        b"\x08\x00\x03r/1"  # response topic "r/1"
        b"\x09\x00\x03\x01\x02\x03"  # correlation data 01 02 03
        b"\x0b\x01"  # subscription identifier 1
        b"\x0b\x80\x01"  # subscription identifier 128 (2-byte varint)
        b"\x0b\xff\xff\xff\x7f"  # subscription identifier 268435455 (the maximum)
        b"\x23\x00\x02"  # topic alias 2
        b"\x26\x00\x01a\x00\x011"  # user property a=1
        b"\x26\x00\x01b\x00\x012"  # user property b=2
        b"\x26\x00\x01a\x00\x011"  # user property a=1 again
        b"hello",  # payload
        Publish(
            "s/t",
            b"hello",
            1,
            False,
            False,
            5,
            payload_format_indicator=0,
            message_expiry_interval=256,
            topic_alias=2,
            response_topic="r/1",
            correlation_data=b"\x01\x02\x03",
            user_properties=(("a", "1"), ("b", "2"), ("a", "1")),
            subscription_identifiers=(1, 128, 268435455),
            content_type="a/b",
        ),
    ),
    Case(
        "v5-publish-topic-alias-only",
        5,
        b"\x30"  # PUBLISH, QoS 0
        b"\x07"  # remaining length 7
        b"\x00\x00"  # topic name "" (the alias names it, 3.3.2.3.4)
        b"\x03"  # property length 3
        b"\x23\x00\x07"  # topic alias 7
        b"p",  # payload
        Publish("", b"p", topic_alias=7),
    ),
    Case(
        "v5-publish-properties-reordered",
        5,
        b"\x30"  # PUBLISH, QoS 0
        b"\x0e"  # remaining length 14
        b"\x00\x01t"  # topic name "t"
        b"\x0a"  # property length 10
        b"\x26\x00\x01a\x00\x01b"  # user property a=b (before the topic alias)
        b"\x23\x00\x01",  # topic alias 1; empty payload
        Publish("t", topic_alias=1, user_properties=(("a", "b"),)),
        canonical=False,
    ),
    Case(
        "v5-puback-length-2",
        5,
        b"\x40"  # PUBACK
        b"\x02"  # remaining length 2: no reason code, success [3.4.2.1]
        b"\x00\x01",  # packet identifier 1
        Puback(1),
    ),
    Case(
        "v5-puback-length-3",
        5,
        b"\x40"  # PUBACK
        b"\x03"  # remaining length 3: reason code, no property length [3.4.2.2.1]
        b"\x00\x01"  # packet identifier 1
        b"\x10",  # reason code 0x10: no matching subscribers
        Puback(1, 0x10),
    ),
    Case(
        "v5-puback-length-3-success",
        5,
        b"\x40"  # PUBACK
        b"\x03"  # remaining length 3
        b"\x00\x01"  # packet identifier 1
        b"\x00",  # reason code 0x00 spelled out (canonical form omits it)
        Puback(1),
        canonical=False,
    ),
    Case(
        "v5-puback-length-4-empty-properties",
        5,
        b"\x40"  # PUBACK
        b"\x04"  # remaining length 4
        b"\x00\x01"  # packet identifier 1
        b"\x00"  # reason code 0x00
        b"\x00",  # property length 0
        Puback(1),
        canonical=False,
    ),
    Case(
        "v5-puback-properties",
        5,
        b"\x40"  # PUBACK
        b"\x11"  # remaining length 17
        b"\x00\x09"  # packet identifier 9
        b"\x80"  # reason code 0x80: unspecified error
        b"\x0d"  # property length 13
        b"\x1f\x00\x03bad"  # reason string "bad"
        b"\x26\x00\x01k\x00\x01v",  # user property k=v
        Puback(9, 0x80, "bad", (("k", "v"),)),
    ),
    Case(
        "v5-pubrec-length-3",
        5,
        b"\x50"  # PUBREC
        b"\x03"  # remaining length 3
        b"\x00\x02"  # packet identifier 2
        b"\x91",  # reason code 0x91: packet identifier in use
        Pubrec(2, 0x91),
    ),
    Case(
        "v5-pubrec-empty-reason-string",
        5,
        b"\x50"  # PUBREC
        b"\x07"  # remaining length 7
        b"\x00\x02"  # packet identifier 2
        b"\x10"  # reason code 0x10: no matching subscribers
        b"\x03"  # property length 3
        b"\x1f\x00\x00",  # reason string ""
        Pubrec(2, 0x10, ""),
    ),
    Case(
        "v5-pubrel-not-found",
        5,
        b"\x62"  # PUBREL, flags 0010
        b"\x03"  # remaining length 3
        b"\x00\x03"  # packet identifier 3
        b"\x92",  # reason code 0x92: packet identifier not found
        Pubrel(3, 0x92),
    ),
    Case(
        "v5-pubrel-empty-user-property",
        5,
        b"\x62"  # PUBREL, flags 0010
        b"\x09"  # remaining length 9
        b"\x00\x03"  # packet identifier 3
        b"\x00"  # reason code 0x00
        b"\x05"  # property length 5
        b"\x26\x00\x00\x00\x00",  # user property ""=""
        Pubrel(3, 0, None, (("", ""),)),
    ),
    Case(
        "v5-pubcomp-length-2",
        5,
        b"\x70"  # PUBCOMP
        b"\x02"  # remaining length 2
        b"\x00\x04",  # packet identifier 4
        Pubcomp(4),
    ),
    Case(
        "v5-pubcomp-reason-string",
        5,
        b"\x70"  # PUBCOMP
        b"\x08"  # remaining length 8
        b"\x00\x04"  # packet identifier 4
        b"\x92"  # reason code 0x92: packet identifier not found
        b"\x04"  # property length 4
        b"\x1f\x00\x01x",  # reason string "x"
        Pubcomp(4, 0x92, "x"),
    ),
    Case(
        "v5-subscribe-minimal",
        5,
        b"\x82"  # SUBSCRIBE, flags 0010
        b"\x07"  # remaining length 7
        b"\x00\x01"  # packet identifier 1
        b"\x00"  # property length 0
        b"\x00\x01a"  # topic filter "a"
        b"\x01",  # options: maximum QoS 1
        Subscribe(1, (Subscription("a", 1),)),
    ),
    Case(
        "v5-subscribe-options-and-properties",
        5,
        b"\x82"  # SUBSCRIBE, flags 0010
        b"\x27"  # remaining length 39
        b"\x00\x0a"  # packet identifier 10
        b"\x0b"  # property length 11
        b"\x0b\x80\x80\x01"  # subscription identifier 16384 (3-byte varint)
        b"\x26\x00\x01u\x00\x01p"  # user property u=p
        b"\x00\x03a/#"  # topic filter "a/#"
        b"\x2e"  # options: retain handling 2, retain as published, no local, QoS 2
        b"\x00\x0c$share/g/x/+"  # topic filter "$share/g/x/+" (shared, section 4.8.2)
        b"\x11"  # options: retain handling 1, QoS 1
        b"\x00\x01+"  # topic filter "+"
        b"\x00",  # options: QoS 0
        Subscribe(
            10,
            (
                Subscription("a/#", 2, True, True, 2),
                Subscription("$share/g/x/+", 1, False, False, 1),
                Subscription("+", 0),
            ),
            subscription_identifier=16384,
            user_properties=(("u", "p"),),
        ),
    ),
    Case(
        "v5-suback-every-reason-code",
        5,
        b"\x90"  # SUBACK
        b"\x0f"  # remaining length 15
        b"\x00\x0a"  # packet identifier 10
        b"\x00"  # property length 0
        b"\x00\x01\x02"  # granted QoS 0, 1, 2
        b"\x80\x83\x87"  # unspecified error, implementation specific error, not authorized
        b"\x8f\x91\x97"  # topic filter invalid, packet identifier in use, quota exceeded
        b"\x9e\xa1\xa2",  # shared / subscription identifiers / wildcards not supported
        Suback(10, (0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)),
    ),
    Case(
        "v5-suback-reason-string",
        5,
        b"\x90"  # SUBACK
        b"\x08"  # remaining length 8
        b"\x00\x0b"  # packet identifier 11
        b"\x04"  # property length 4
        b"\x1f\x00\x01n"  # reason string "n"
        b"\x87",  # not authorized
        Suback(11, (0x87,), "n"),
    ),
    Case(
        "v5-unsubscribe",
        5,
        b"\xa2"  # UNSUBSCRIBE, flags 0010
        b"\x19"  # remaining length 25
        b"\x00\x0c"  # packet identifier 12
        b"\x07"  # property length 7
        b"\x26\x00\x01a\x00\x01b"  # user property a=b
        b"\x00\x0a$share/g/#"  # topic filter "$share/g/#"
        b"\x00\x01x",  # topic filter "x"
        Unsubscribe(12, ("$share/g/#", "x"), (("a", "b"),)),
    ),
    Case(
        "v5-unsuback-every-reason-code",
        5,
        b"\xb0"  # UNSUBACK
        b"\x0a"  # remaining length 10
        b"\x00\x0c"  # packet identifier 12
        b"\x00"  # property length 0
        b"\x00\x11"  # success, no subscription existed
        b"\x80\x83\x87"  # unspecified error, implementation specific error, not authorized
        b"\x8f\x91",  # topic filter invalid, packet identifier in use
        Unsuback(12, (0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)),
    ),
    Case(
        "v5-unsuback-reason-string",
        5,
        b"\xb0"  # UNSUBACK
        b"\x09"  # remaining length 9
        b"\x00\x0d"  # packet identifier 13
        b"\x05"  # property length 5
        b"\x1f\x00\x02no"  # reason string "no"
        b"\x11",  # no subscription existed
        Unsuback(13, (0x11,), "no"),
    ),
    Case(
        "v5-pingreq",
        5,
        b"\xc0"  # PINGREQ
        b"\x00",  # remaining length 0
        Pingreq(),
    ),
    Case(
        "v5-pingresp",
        5,
        b"\xd0"  # PINGRESP
        b"\x00",  # remaining length 0
        Pingresp(),
    ),
    Case(
        "v5-disconnect-length-0",
        5,
        b"\xe0"  # DISCONNECT
        b"\x00",  # remaining length 0: normal disconnection [3.14.2.1]
        Disconnect(),
    ),
    Case(
        "v5-disconnect-length-1",
        5,
        b"\xe0"  # DISCONNECT
        b"\x01"  # remaining length 1: no property length [3.14.2.2.1]
        b"\x04",  # reason code 0x04: disconnect with will message
        Disconnect(4),
    ),
    Case(
        "v5-disconnect-length-1-normal",
        5,
        b"\xe0"  # DISCONNECT
        b"\x01"  # remaining length 1
        b"\x00",  # reason code 0x00 spelled out (canonical form omits it)
        Disconnect(),
        canonical=False,
    ),
    Case(
        "v5-disconnect-length-2-empty-properties",
        5,
        b"\xe0"  # DISCONNECT
        b"\x02"  # remaining length 2
        b"\x00"  # reason code 0x00
        b"\x00",  # property length 0
        Disconnect(),
        canonical=False,
    ),
    Case(
        "v5-disconnect-all-properties",
        5,
        b"\xe0"  # DISCONNECT
        b"\x17"  # remaining length 23
        b"\x9c"  # reason code 0x9C: use another server
        b"\x15"  # property length 21
        b"\x11\x00\x00\x00\x00"  # session expiry interval 0
        b"\x1c\x00\x02h2"  # server reference "h2"
        b"\x1f\x00\x01r"  # reason string "r"
        b"\x26\x00\x01k\x00\x01v",  # user property k=v
        Disconnect(0x9C, 0, "r", "h2", (("k", "v"),)),
    ),
    Case(
        "v5-auth-length-0",
        5,
        b"\xf0"  # AUTH
        b"\x00",  # remaining length 0: success, no properties [3.15.2.1]
        Auth(),
    ),
    Case(
        "v5-auth-continue",
        5,
        b"\xf0"  # AUTH
        b"\x1a"  # remaining length 26
        b"\x18"  # reason code 0x18: continue authentication
        b"\x18"  # property length 24
        b"\x15\x00\x05SCRAM"  # authentication method "SCRAM"
        b"\x16\x00\x02ab"  # authentication data "ab"
        b"\x1f\x00\x01c"  # reason string "c"
        b"\x26\x00\x01d\x00\x01e",  # user property d=e
        Auth(0x18, "SCRAM", b"ab", "c", (("d", "e"),)),
    ),
    Case(
        "v5-auth-reauthenticate",
        5,
        b"\xf0"  # AUTH
        b"\x06"  # remaining length 6
        b"\x19"  # reason code 0x19: re-authenticate
        b"\x04"  # property length 4
        b"\x15\x00\x01m",  # authentication method "m"
        Auth(0x19, "m"),
    ),
    Case(
        "v5-auth-success",
        5,
        b"\xf0"  # AUTH
        b"\x06"  # remaining length 6
        b"\x00"  # reason code 0x00: success (end of a re-authentication, 4.12.1)
        b"\x04"  # property length 4
        b"\x15\x00\x01m",  # authentication method "m"
        Auth(0, "m"),
    ),
)
