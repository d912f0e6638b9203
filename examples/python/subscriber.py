"""subscriber.py -- live clips without Convex's useQuery: LISTEN for the
extension's notifications, poll the change feed when one arrives (asyncio).

Every committed change of a clip sends one NOTIFY on dd_clipper_clips with
{"table","user_id","id","op","version"}.  The notification says *when* to
poll; dd_clip_changes says *what* changed, and a client that polls with the
version it was given never misses a committed change.  So the subscriber
LISTENs on its own connection, polls once to catch up from the version it
resumes from, then on each notification for its user and on a slow timer
(notifications sent while it was down are lost, changes never are); when a
notification names a version the feed does not reach yet (an older
transaction is still open), it polls again shortly until it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Awaitable, Callable, Optional

from psycopg import AsyncConnection

import dd_clipper as dd

CHANNEL = "dd_clipper_clips"


class ClipSubscriber:
    """``async with ClipSubscriber(user_id, on_changes) as sub: ...``;
    on_changes(changes, reason) is awaited once per batch, in feed order;
    ``sub.version`` is the version to resume from (persist it)."""

    def __init__(self, user_id: str,
                 on_changes: Callable[[list[dd.ClipChange], str], Awaitable[None]],
                 since: int = 0, conninfo: str = "", max: int = 100,
                 retry: float = 0.05, timer: float = 30.0) -> None:
        self.user_id, self.on_changes, self.version = user_id, on_changes, since
        self.conninfo, self.max, self.retry, self.timer = conninfo, max, retry, timer
        self._wanted = 0                    # the highest version a notification named
        self._wake: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listen: Optional[AsyncConnection[Any]] = None
        self._poll_conn: Optional[AsyncConnection[Any]] = None

    async def __aenter__(self) -> "ClipSubscriber":
        self._listen = await AsyncConnection.connect(self.conninfo, autocommit=True)
        self._poll_conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
        await self._listen.execute(f"LISTEN {CHANNEL}")
        await self.poll("start")
        self._tasks = [asyncio.create_task(self._listener()), asyncio.create_task(self._poller())]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in (self._listen, self._poll_conn):
            if conn is not None:
                await conn.close()

    async def poll(self, reason: str = "timer") -> None:
        """Deliver every change after self.version."""
        assert self._poll_conn is not None
        while True:
            feed = await dd.aclip_changes(self._poll_conn, self.user_id, since=self.version, max=self.max)
            self.version = feed["version"]
            if feed["changes"]:
                await self.on_changes(feed["changes"], reason)
            if len(feed["changes"]) < self.max:
                return

    async def _listener(self) -> None:
        assert self._listen is not None
        async for note in self._listen.notifies():
            payload = json.loads(note.payload)
            if payload.get("user_id") != self.user_id:
                continue
            self._wanted = max(self._wanted, payload["version"])
            if payload["version"] > self.version:
                self._wake.put_nowait("notify")

    async def _poller(self) -> None:
        # The only caller of poll() once started: polls never overlap.
        while True:
            wait = self.retry if self._wanted > self.version else self.timer
            try:
                reason = await asyncio.wait_for(self._wake.get(), wait)
            except asyncio.TimeoutError:
                reason = "retry" if self._wanted > self.version else "timer"
            while not self._wake.empty():   # one poll answers every queued wake-up
                self._wake.get_nowait()
            await self.poll(reason)
