"""``json=``: a custom JSON module encodes what is sent and decodes what handlers get,
in the Flask facade and in AsyncServer (python-socketio's official clients)."""

from __future__ import annotations

import asyncio
import datetime
import json
from decimal import Decimal
from typing import Any

import flask
import pytest
import socketio

from conftest import WAIT, Recorder
import swarmcast
from swarmcast import _json
from swarmcast.flask import SocketIO, emit


class TaggedJSON:
    """A json module that writes dates as {"$date": iso} and reads them back, and reads
    every float as a Decimal."""

    @staticmethod
    def _default(obj: Any) -> Any:
        if isinstance(obj, datetime.date):
            return {"$date": obj.isoformat()}
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    @staticmethod
    def _hook(obj: dict[str, Any]) -> Any:
        if set(obj) == {"$date"}:
            return datetime.date.fromisoformat(obj["$date"])
        return obj

    @classmethod
    def dumps(cls, obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, default=cls._default, **kwargs)

    @classmethod
    def loads(cls, text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, object_hook=cls._hook, parse_float=Decimal, **kwargs)


DAY = {"$date": "2026-11-30"}


def test_codec_roundtrip_keeps_binaries() -> None:
    args = ({"when": DAY, "blob": b"\x00\x01", "n": [1.5, {"x": bytearray(b"z")}]}, "s")
    decoded = _json.decode(TaggedJSON, args)
    assert decoded == (
        {"when": datetime.date(2026, 11, 30), "blob": b"\x00\x01", "n": [Decimal("1.5"), {"x": b"z"}]},
        "s",
    )
    assert _json.encode(TaggedJSON, (datetime.date(2026, 1, 2), b"\xff")) == (
        {"$date": "2026-01-02"},
        b"\xff",
    )
    assert _json.encode(TaggedJSON, {"d": datetime.date(2026, 1, 2)}) == {"d": {"$date": "2026-01-02"}}
    assert _json.decode(json, ({"a": 1, "b": 2}, b"x")) == ({"a": 1, "b": 2}, b"x")
    # A dict that only looks like a placeholder stays a dict.
    assert _json.decode(json, ({"_placeholder": True, "num": 5},)) == ({"_placeholder": True, "num": 5},)

    class Broken:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(text: str) -> Any:
            return {"not": "a list"}

    with pytest.raises(TypeError, match="list of arguments"):
        _json.decode(Broken, (1,))


def test_flask_facade_decodes_with_the_json_module(clients: list[socketio.Client], transport: str) -> None:
    app = flask.Flask(__name__)
    sio = SocketIO(app, json=TaggedJSON)
    seen = Recorder()

    @sio.on("connect")
    def connect(auth: Any) -> None:
        seen("connect", auth)

    @sio.on("book")
    def book(data: dict[str, Any], blob: bytes) -> Any:
        seen("book", data, blob)
        emit("booked", {"until": data["when"] + datetime.timedelta(days=1)})
        return {"on": data["when"], "price": float(data["price"] * 2)}

    server = sio.start(port=0)
    try:
        got = Recorder()
        client = socketio.Client(reconnection=False)
        clients.append(client)
        client.on("booked", lambda data: got("booked", data))
        client.connect(server.url, transports=[transport], auth={"since": DAY}, wait_timeout=WAIT)
        answer = client.call("book", ({"when": DAY, "price": 1.25}, b"\x01\x02"), timeout=WAIT)
        calls = seen.wait(2)
        assert calls[0] == ("connect", {"since": datetime.date(2026, 11, 30)})
        assert calls[1] == ("book", {"when": datetime.date(2026, 11, 30), "price": Decimal("1.25")}, b"\x01\x02")
        assert isinstance(calls[1][1]["price"], Decimal)
        # What the handler sends back is encoded with the module too (ack and emit).
        assert answer == {"on": DAY, "price": 2.5}
        assert got.wait(1) == [("booked", {"until": {"$date": "2026-12-01"}})]
        client.disconnect()  # before the server goes (a polling client would wait)
    finally:
        sio.stop()


async def test_async_server_json_both_ways() -> None:
    sio = swarmcast.AsyncServer(port=0, json=TaggedJSON)
    seen: list[Any] = []

    @sio.on("shift")
    async def shift(sid: str, day: datetime.date, amount: Decimal) -> Any:
        seen.append((day, amount))
        return day + datetime.timedelta(days=int(amount))

    @sio.on("sync_shift")
    def sync_shift(sid: str, day: datetime.date) -> Any:
        seen.append(("sync", day))
        return {"$date": (day + datetime.timedelta(days=7)).isoformat()}

    async with sio:
        client = socketio.AsyncClient(reconnection=False)
        client.on("ask", lambda: {"when": DAY, "x": 0.5})
        await client.connect(sio.url, transports=["websocket"], wait_timeout=5)
        try:
            assert await client.call("shift", (DAY, 2.0), timeout=5) == {"$date": "2026-12-02"}
            assert seen == [(datetime.date(2026, 11, 30), Decimal("2.0"))]
            assert await client.call("sync_shift", DAY, timeout=5) == {"$date": "2026-12-07"}
            assert seen[1] == ("sync", datetime.date(2026, 11, 30))
            # call(): what is sent is encoded, the ack decoded, with the module.
            assert await sio.call("ask", to=client.get_sid(), timeout=5) == {
                "when": datetime.date(2026, 11, 30),
                "x": Decimal("0.5"),
            }
            got: list[Any] = []
            client.on("day", got.append)
            assert await sio.emit("day", datetime.date(2027, 1, 1)) == 1
            for _ in range(int(WAIT / 0.01)):
                if got:
                    break
                await asyncio.sleep(0.01)
            assert got == [{"$date": "2027-01-01"}]
        finally:
            await client.disconnect()
