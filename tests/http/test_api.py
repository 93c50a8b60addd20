"""The REST API (/api/v1) against a broker with real clients connected: paho-mqtt and
mosquitto_pub/sub. Every endpoint, and every error status each can answer."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from roost import __version__
from roost.codec import MQTT_3_1_1, MQTT_5
from tests.http.client import Api, expect_error
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import finish, mosquitto_pub, start_mosquitto_sub
from tests.support.paho import PahoClient, prop
from tests.support.waiting import wait_offline, wait_subscribed, wait_until


def _client_ids(api: Api, query: str = "") -> list[str]:
    return [client["clientid"] for client in api.data("/api/v1/clients" + query)["data"]]


def test_clients_lists_every_connected_client_with_emqx_fields(
    http_broker: BrokerThread, api: Api
) -> None:
    port = http_broker.port
    PahoClient(port, "alpha", MQTT_5, keepalive=30)
    PahoClient(port, "beta", MQTT_3_1_1, keepalive=45)
    start_mosquitto_sub(port, "-i", "gamma", "-u", "bob", "-t", "x/#", "-V", "mqttv311")
    wait_subscribed(http_broker, "gamma", "x/#")

    body = api.data("/api/v1/clients")
    assert body["meta"] == {"page": 1, "limit": 100, "count": 3, "hasnext": False}
    clients = {client["clientid"]: client for client in body["data"]}
    assert set(clients) == {"alpha", "beta", "gamma"}
    alpha = clients["alpha"]
    assert alpha["proto_ver"] == 5
    assert alpha["keepalive"] == 30
    assert alpha["username"] is None
    assert alpha["ip_address"] == "127.0.0.1"
    assert isinstance(alpha["port"], int)
    assert alpha["port"] > 0
    assert alpha["connected"] is True
    assert alpha["inflight"] == 0
    assert alpha["mqueue_len"] == 0
    assert datetime.fromisoformat(alpha["connected_at"]).year >= 2024
    assert clients["beta"]["proto_ver"] == 4
    assert clients["beta"]["keepalive"] == 45
    assert clients["gamma"]["username"] == "bob"
    assert clients["gamma"]["subscriptions_cnt"] == 1

    # Pagination and search.
    first = api.data("/api/v1/clients?limit=2")
    assert len(first["data"]) == 2
    assert first["meta"] == {"page": 1, "limit": 2, "count": 3, "hasnext": True}
    second = api.data("/api/v1/clients?limit=2&page=2")
    assert len(second["data"]) == 1
    assert second["meta"]["hasnext"] is False
    paged = {c["clientid"] for c in first["data"]} | {c["clientid"] for c in second["data"]}
    assert paged == {"alpha", "beta", "gamma"}
    assert _client_ids(api, "?like_clientid=amm") == ["gamma"]
    assert _client_ids(api, "?username=bob") == ["gamma"]
    assert _client_ids(api, "?like_username=o") == ["gamma"]
    assert len(_client_ids(api, "?ip_address=127.0.0.1")) == 3
    assert _client_ids(api, "?ip_address=10.0.0.1") == []


def test_one_client_and_its_subscriptions(http_broker: BrokerThread, api: Api) -> None:
    alpha = PahoClient(http_broker.port, "alpha", MQTT_5)
    alpha.subscribe("s/+", 1, noLocal=True)
    alpha.subscribe("$share/g/jobs/#", 2)

    client = api.data("/api/v1/clients/alpha")
    assert client["clientid"] == "alpha"
    assert client["subscriptions_cnt"] == 2
    subscriptions = api.data("/api/v1/clients/alpha/subscriptions")
    by_topic = {s["topic"]: s for s in subscriptions}
    assert by_topic["s/+"] == {
        "clientid": "alpha",
        "topic": "s/+",
        "qos": 1,
        "nl": 1,
        "rap": 0,
        "rh": 0,
        "share_group": None,
        "subid": None,
    }
    assert by_topic["$share/g/jobs/#"]["share_group"] == "g"
    assert by_topic["$share/g/jobs/#"]["qos"] == 2

    expect_error(api.get("/api/v1/clients/nobody"), 404, "NOT_FOUND")
    expect_error(api.get("/api/v1/clients/nobody/subscriptions"), 404, "NOT_FOUND")


def test_kicking_an_mqtt5_client_sends_administrative_action(
    http_broker: BrokerThread, api: Api
) -> None:
    victim = PahoClient(http_broker.port, "victim", MQTT_5)
    bystander = PahoClient(http_broker.port, "bystander", MQTT_5)

    reply = api.delete("/api/v1/clients/victim")
    assert reply.status == 204
    assert victim.disconnected.wait(5)
    assert victim.disconnect_reason.value == 0x98  # Administrative action
    wait_until(lambda: "victim" not in _client_ids(api))
    assert _client_ids(api) == ["bystander"]
    assert not bystander.disconnected.is_set()
    expect_error(api.delete("/api/v1/clients/victim"), 404, "NOT_FOUND")
    closes = http_broker.call(lambda: dict(http_broker.broker.stats.closed_by_broker))
    assert closes.get("administrative_action") == 1


def test_kicking_an_mqtt311_client_closes_its_connection(
    http_broker: BrokerThread, api: Api
) -> None:
    victim = PahoClient(http_broker.port, "old", MQTT_3_1_1, clean=False)
    assert api.delete("/api/v1/clients/old").status == 204
    assert victim.disconnected.wait(5)
    wait_offline(http_broker, "old")
    # The session outlives the kick, as after any lost connection.
    session = api.data("/api/v1/sessions/old")
    assert session["connected"] is False


def test_sessions_online_and_offline(http_broker: BrokerThread, api: Api) -> None:
    port = http_broker.port
    PahoClient(port, "online", MQTT_5)
    keeper = PahoClient(port, "keeper", MQTT_5, clean=False, session_expiry=300)
    keeper.subscribe("k/#", 1)
    keeper.disconnect()
    wait_offline(http_broker, "keeper")

    body = api.data("/api/v1/sessions")
    assert body["meta"]["count"] == 2
    sessions = {s["clientid"]: s for s in body["data"]}
    assert sessions["online"]["connected"] is True
    assert sessions["online"]["expires_at"] is None
    offline = sessions["keeper"]
    assert offline["connected"] is False
    assert offline["expiry_interval"] == 300
    assert offline["subscriptions_cnt"] == 1
    assert datetime.fromisoformat(offline["expires_at"]) > datetime.fromisoformat(
        api.data("/api/v1/status")["started_at"]
    )
    assert [s["clientid"] for s in api.data("/api/v1/sessions?connected=false")["data"]] == [
        "keeper"
    ]
    assert [s["clientid"] for s in api.data("/api/v1/sessions?connected=true")["data"]] == [
        "online"
    ]
    assert api.data("/api/v1/sessions/keeper")["clientid"] == "keeper"
    # An offline session's subscriptions are there too; it is no connected client.
    assert [s["topic"] for s in api.data("/api/v1/clients/keeper/subscriptions")] == ["k/#"]
    expect_error(api.get("/api/v1/clients/keeper"), 404, "NOT_FOUND")
    expect_error(api.get("/api/v1/sessions/nobody"), 404, "NOT_FOUND")
    expect_error(api.get("/api/v1/sessions?connected=maybe"), 400, "BAD_REQUEST")


def test_subscriptions_search(http_broker: BrokerThread, api: Api) -> None:
    one = PahoClient(http_broker.port, "one", MQTT_5)
    two = PahoClient(http_broker.port, "two", MQTT_5)
    one.subscribe("sensors/+/temp", 0)
    one.subscribe("alerts/#", 2)
    two.subscribe("sensors/+/temp", 1)
    two.subscribe("$share/workers/jobs", 1)

    def topics(query: str) -> list[tuple[str, str]]:
        data = api.data("/api/v1/subscriptions" + query)["data"]
        return sorted((s["clientid"], s["topic"]) for s in data)

    assert len(topics("")) == 4
    assert api.data("/api/v1/subscriptions")["meta"]["count"] == 4
    assert topics("?clientid=one") == [("one", "alerts/#"), ("one", "sensors/+/temp")]
    assert topics("?topic=sensors/%2B/temp") == [
        ("one", "sensors/+/temp"),
        ("two", "sensors/+/temp"),
    ]
    assert topics("?qos=2") == [("one", "alerts/#")]
    assert topics("?share_group=workers") == [("two", "$share/workers/jobs")]
    assert topics("?match_topic=sensors/attic/temp") == [
        ("one", "sensors/+/temp"),
        ("two", "sensors/+/temp"),
    ]
    assert topics("?clientid=nobody") == []
    expect_error(api.get("/api/v1/subscriptions?qos=3"), 400, "BAD_REQUEST")
    expect_error(api.get("/api/v1/subscriptions?qos=high"), 400, "BAD_REQUEST")
    expect_error(api.get("/api/v1/subscriptions?match_topic=a/%2B"), 400, "BAD_REQUEST")


def test_retained_messages_list_get_delete(http_broker: BrokerThread, api: Api) -> None:
    port = http_broker.port
    mosquitto_pub(port, "-t", "home/kitchen/temp", "-m", "21.5", "-r", "-q", "1")
    mosquitto_pub(port, "-t", "home/hall/light", "-m", "on", "-r")
    binary = bytes(range(250, 256)) + b"\x00"
    PahoClient(port, "pub", MQTT_5).publish("home/raw", binary, 1, retain=True)
    wait_until(lambda: api.data("/api/v1/retainer/messages")["meta"]["count"] == 3)

    listed = api.data("/api/v1/retainer/messages")
    assert [m["topic"] for m in listed["data"]] == [
        "home/hall/light",
        "home/kitchen/temp",
        "home/raw",
    ]
    assert "payload" not in listed["data"][0]
    assert listed["data"][1]["qos"] == 1
    assert listed["data"][1]["payload_size"] == 4
    assert listed["data"][2]["from_clientid"] == "pub"
    kitchen = api.data("/api/v1/retainer/messages?topic=home/kitchen/%23")["data"]
    assert [m["topic"] for m in kitchen] == ["home/kitchen/temp"]
    with_payloads = api.data("/api/v1/retainer/messages?payload_encoding=plain&limit=1")
    assert with_payloads["data"][0]["payload"] == "on"

    one = api.data("/api/v1/retainer/message/home/kitchen/temp")
    assert one["payload_encoding"] == "base64"
    assert base64.b64decode(one["payload"]) == b"21.5"
    plain = api.data("/api/v1/retainer/message/home%2Fkitchen%2Ftemp?payload_encoding=plain")
    assert (plain["payload"], plain["payload_encoding"]) == ("21.5", "plain")
    raw = api.data("/api/v1/retainer/message/home/raw?payload_encoding=plain")
    assert raw["payload_encoding"] == "base64"  # not UTF-8: base64 whatever was asked
    assert base64.b64decode(raw["payload"]) == binary

    assert api.delete("/api/v1/retainer/message/home/kitchen/temp").status == 204
    expect_error(api.get("/api/v1/retainer/message/home/kitchen/temp"), 404, "NOT_FOUND")
    expect_error(api.delete("/api/v1/retainer/message/home/kitchen/temp"), 404, "NOT_FOUND")
    left = http_broker.call(lambda: http_broker.broker.router.retained_topics("home/#"))
    assert sorted(left) == ["home/hall/light", "home/raw"]
    # A new subscriber gets only what is left.
    sub = PahoClient(port, "late", MQTT_5)
    sub.subscribe("home/#", 0)
    assert sorted(m.topic for m in sub.take(2)) == ["home/hall/light", "home/raw"]

    expect_error(api.get("/api/v1/retainer/message/home/%2B"), 400, "BAD_REQUEST")
    expect_error(api.get("/api/v1/retainer/messages?topic=a/%23/b"), 400, "BAD_REQUEST")
    expect_error(
        api.get("/api/v1/retainer/message/home/raw?payload_encoding=hex"), 400, "BAD_REQUEST"
    )


def test_publish_reaches_real_subscribers(http_broker: BrokerThread, api: Api) -> None:
    port = http_broker.port
    sub = start_mosquitto_sub(port, "-i", "listener", "-t", "cmd/#", "-q", "1", "-v", "-C", "2")
    wait_subscribed(http_broker, "listener", "cmd/#")

    reply = api.post("/api/v1/publish", {"topic": "cmd/a", "payload": "héllo", "qos": 1})
    assert reply.status == 200, reply.body
    assert reply.json() == {"delivered": 1}
    encoded = base64.b64encode(b"from base64").decode()
    reply = api.post(
        "/api/v1/publish",
        {"topic": "cmd/b", "payload": encoded, "payload_encoding": "base64", "retain": True},
    )
    assert reply.json() == {"delivered": 1}
    assert finish(sub) == ["cmd/a héllo", "cmd/b from base64"]
    kept = api.data("/api/v1/retainer/message/cmd/b?payload_encoding=plain")
    assert kept["payload"] == "from base64"
    assert kept["from_clientid"] is None
    # No subscriber: published, delivered to nobody.
    reply = api.post("/api/v1/publish", {"topic": "nobody/listens", "payload": "x"})
    assert reply.json() == {"delivered": 0}
    # MQTT 5 properties a subscriber sees.
    paho = PahoClient(port, "props", MQTT_5)
    paho.subscribe("p", 0)
    reply = api.post(
        "/api/v1/publish",
        {
            "topic": "p",
            "payload": "{}",
            "content_type": "application/json",
            "message_expiry_interval": 60,
        },
    )
    assert reply.status == 200
    message = paho.next_message()
    assert message.payload == b"{}"
    assert prop(message, "ContentType") == "application/json"
    assert 0 < prop(message, "MessageExpiryInterval") <= 60


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"payload": "x"}, "topic"),
        ({"topic": "a/+", "payload": "x"}, "wildcard"),
        ({"topic": "", "payload": "x"}, "empty"),
        ({"topic": "a\u0000b"}, "NUL"),
        ({"topic": "a", "qos": 3}, "qos"),
        ({"topic": "a", "qos": "1"}, "qos"),
        ({"topic": "a", "qos": True}, "qos"),
        ({"topic": "a", "retain": "yes"}, "retain"),
        ({"topic": "a", "payload": 5}, "payload"),
        ({"topic": "a", "payload_encoding": "hex"}, "payload_encoding"),
        ({"topic": "a", "payload": "!!!", "payload_encoding": "base64"}, "base64"),
        ({"topic": "a", "message_expiry_interval": 0}, "message_expiry_interval"),
        ({"topic": "a", "content_type": 7}, "content_type"),
        ({"topic": "$SYS/broker/x", "payload": "x"}, "allow_sys_publish"),
    ],
)
def test_publish_refuses_bad_input(
    http_broker: BrokerThread, api: Api, body: dict[str, object], fragment: str
) -> None:
    message = expect_error(api.post("/api/v1/publish", body), 400, "BAD_REQUEST")
    assert fragment in message


def test_publish_wants_a_json_object(api: Api) -> None:
    expect_error(
        api.post("/api/v1/publish", raw=b"topic=a", headers={"Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    expect_error(
        api.post("/api/v1/publish", raw=b"{no", headers={"Content-Type": "application/json"}),
        400,
        "BAD_REQUEST",
    )
    expect_error(api.post("/api/v1/publish", ["topic"]), 400, "BAD_REQUEST")


def test_status_says_what_the_broker_is(http_broker: BrokerThread, api: Api) -> None:
    status = api.data("/api/v1/status")
    assert status["version"] == __version__
    assert status["uptime"] >= 0
    assert [listener["port"] for listener in status["listeners"]] == [http_broker.port]
    assert status["listeners"][0]["running"] is True
    assert status["http"]["auth"] == "none (loopback only)"
    assert status["config"]["maximum_qos"] == 2
    assert "memory" in status["persistence"]


def test_unknown_paths_methods_and_pages_are_json_errors(api: Api) -> None:
    expect_error(api.get("/api/v1/nothing"), 404, "NOT_FOUND")
    reply = api.request("PUT", "/api/v1/clients")
    expect_error(reply, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in reply.headers["Allow"]
    for query in ("page=0", "page=x", "limit=0", "limit=1001"):
        expect_error(api.get("/api/v1/clients?" + query), 400, "BAD_REQUEST")
