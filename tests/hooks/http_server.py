"""A real aiohttp HTTP server on 127.0.0.1 (port 0) in a thread, for the webhook tests.

``answers`` is a list of statuses to answer the next requests with, in order (then 200);
``hold()`` makes requests wait until ``release()``. Every request's JSON body is kept in
``bodies`` (with the status it got), in the order they came.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class HttpServer:
    def __init__(self) -> None:
        self.bodies: list[tuple[int, Any]] = []
        self.answers: list[int] = []
        self.loop = asyncio.new_event_loop()
        self._gate: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)
        self.port = 0
        self.waiting = 0  # requests held by hold()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> HttpServer:
        self._thread.start()
        assert self._ready.wait(10), "HTTP server did not start"
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._gate is not None:
                self._gate.set()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def hold(self) -> None:
        async def make() -> None:
            self._gate = asyncio.Event()

        asyncio.run_coroutine_threadsafe(make(), self.loop).result(10)

    def release(self) -> None:
        def open_gate() -> None:
            if self._gate is not None:
                self._gate.set()

        self.loop.call_soon_threadsafe(open_gate)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        runner = self._runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        gate = self._gate
        if gate is not None and not gate.is_set():
            self.waiting += 1
            await gate.wait()
        status = self.answers.pop(0) if self.answers else 200
        self.bodies.append((status, body))
        return web.Response(status=status)
