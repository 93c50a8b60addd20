"""A small application to test against Roost: the sample for docs/testing.md.

``watch_temperatures`` is an asyncio service: it reads ``sensors/<room>/temperature``
and publishes an alert on ``alerts/<room>`` when a reading is above the threshold,
which it takes from the retained message on ``config/threshold`` if there is one.
``report`` is a plain function a synchronous program would call.
"""

from __future__ import annotations

import asyncio

from roost.client import Client

DEFAULT_THRESHOLD = 25.0


async def watch_temperatures(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Run until cancelled; ``ready`` is set once subscribed."""
    threshold = DEFAULT_THRESHOLD
    async with Client(host, port, client_id="thermostat") as client:
        await client.subscribe("config/threshold", qos=1)
        await client.subscribe("sensors/+/temperature", qos=1)
        if ready is not None:
            ready.set()
        async for message in client.messages():
            if message.topic == "config/threshold":
                threshold = float(message.text)
                continue
            room = message.topic.split("/")[1]
            if float(message.text) > threshold:
                await client.publish(f"alerts/{room}", f"{room}: {message.text}", qos=1)


def report(host: str, port: int, room: str, celsius: float) -> None:
    """Publish one reading, retained, from synchronous code."""

    async def send() -> None:
        async with Client(host, port) as client:
            await client.publish(f"sensors/{room}/temperature", str(celsius), qos=1, retain=True)

    asyncio.run(send())
