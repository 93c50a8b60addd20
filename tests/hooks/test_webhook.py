"""roost.hooks.webhook: messages POSTed to a real aiohttp server, retried after a 5xx,
given up on after a 4xx, and dropped (counted) beyond a full queue."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from roost.broker import HookConfig
from roost.hooks.webhook import WebhookForwarder
from tests.broker.hook_probes import instance
from tests.hooks.http_server import HttpServer
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

MakeBroker = Callable[..., BrokerThread]


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer().start()
    yield server
    server.stop()


def webhook(http: HttpServer, **options: object) -> list[HookConfig]:
    return [HookConfig("webhook", {"url": http.url, "backoff": 0.01, **options})]


def test_matching_messages_are_posted_and_a_500_is_retried(
    make_broker: MakeBroker, http: HttpServer
) -> None:
    broker = make_broker(hooks=webhook(http, topics=["sensors/#"]))
    hook = instance(broker, WebhookForwarder)
    http.answers = [500, 503]  # the first message needs two retries
    client = PahoClient(broker.port, "pub")
    client.publish("other/topic", b"not forwarded", qos=1)
    client.publish("sensors/1", b"21.5", qos=1, ContentType="text/plain")
    client.publish("sensors/2", b"\xff\x00", qos=0)
    wait_until(lambda: hook.sent == 2)
    assert [status for status, _body in http.bodies] == [500, 503, 200, 200]
    first = http.bodies[2][1]
    assert first == {
        "topic": "sensors/1",
        "payload": "21.5",
        "qos": 1,
        "retain": False,
        "client_id": "pub",
        "username": None,
        "content_type": "text/plain",
        "user_properties": [],
    }
    second = http.bodies[3][1]
    assert (second["payload"], second["payload_encoding"]) == ("/wA=", "base64")
    assert (hook.queued, hook.retried, hook.failed, hook.dropped) == (2, 2, 0, 0)


def test_a_4xx_is_not_retried_and_retries_run_out(
    make_broker: MakeBroker, http: HttpServer
) -> None:
    broker = make_broker(hooks=webhook(http, retries=1))
    hook = instance(broker, WebhookForwarder)
    http.answers = [400, 500, 500]
    client = PahoClient(broker.port, "pub")
    client.publish("a", b"refused", qos=1)
    client.publish("b", b"failing", qos=1)
    client.publish("c", b"fine", qos=1)
    wait_until(lambda: hook.sent == 1)
    assert [(status, body["topic"]) for status, body in http.bodies] == [
        (400, "a"),
        (500, "b"),
        (500, "b"),
        (200, "c"),
    ]
    assert (hook.failed, hook.retried) == (2, 1)


def test_a_full_queue_drops_the_newest_and_keeps_order(
    make_broker: MakeBroker, http: HttpServer
) -> None:
    broker = make_broker(hooks=webhook(http, queue_size=2))
    hook = instance(broker, WebhookForwarder)
    http.hold()
    client = PahoClient(broker.port, "pub")
    client.publish("t", b"0", qos=1)
    wait_until(lambda: http.waiting == 1)  # the one worker is busy with it
    for n in range(1, 5):
        client.publish("t", f"{n}".encode(), qos=1)  # 1 and 2 queue; 3 and 4 do not fit
    assert (hook.queued, hook.dropped) == (3, 2)
    http.release()
    wait_until(lambda: hook.sent == 3)
    assert [body["payload"] for _status, body in http.bodies] == ["0", "1", "2"]


def test_bad_options_stop_the_broker_from_starting() -> None:
    from roost.broker import Broker, BrokerConfig, HookError

    with pytest.raises(HookError, match=r"options\.url"):
        Broker(BrokerConfig(hooks=[HookConfig("webhook", {"url": "ftp://x"})]))
    with pytest.raises(HookError, match="unknown options: urll"):
        Broker(BrokerConfig(hooks=[HookConfig("webhook", {"urll": "http://x"})]))
