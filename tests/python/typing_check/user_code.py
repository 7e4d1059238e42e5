# SPDX-License-Identifier: MIT
"""User code written against docs/python.md (websockets' API on lightws),
for mypy --strict (tests/python/test_typing.py runs it, and mypy when it is
installed)."""
import asyncio
import http
import threading
from typing import Optional, Set

import lightws
import lightws.asyncio
import lightws.sync
from lightws.asyncio import ClientConnection, Server, ServerConnection, connect, serve

CONNECTIONS: Set[ServerConnection] = set()


def auth(connection: ServerConnection, request: lightws.Request) -> Optional[lightws.Response]:
    if request.headers.get("Authorization") is None:
        return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Missing token\n")
    return None


async def handler(websocket: ServerConnection) -> None:
    CONNECTIONS.add(websocket)
    try:
        async for message in websocket:
            await websocket.send(message)
            lightws.broadcast(CONNECTIONS, "someone spoke")
    finally:
        CONNECTIONS.discard(websocket)


async def client(uri: str) -> str:
    async with connect(uri, additional_headers={"Authorization": "Bearer x"},
                       subprotocols=["chat"], open_timeout=5) as websocket:
        await websocket.send("Hello world!")
        await websocket.send(["frag", "ments"])
        latency: float = await (await websocket.ping())
        reply = await websocket.recv(decode=True)
        assert isinstance(reply, str)
        status: int = 101 if websocket.response is None else websocket.response.status_code
        return f"{reply} {latency:.3f} {status} {websocket.state.name}"


async def reconnecting(uri: str) -> None:
    async for websocket in connect(uri):
        try:
            print(await websocket.recv())
        except lightws.ConnectionClosed as e:
            code: Optional[int] = e.rcvd.code if e.rcvd is not None else None
            print(code)
            continue


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, process_request=auth) as server:
        port: int = server.port
        print(await client(f"ws://127.0.0.1:{port}/"))
    srv: Server = await serve(handler, "127.0.0.1", 0)
    srv.close()
    await srv.wait_closed()
    ws: ClientConnection
    try:
        ws = await connect("ws://127.0.0.1:1/")
    except lightws.InvalidStatus as e:
        print(e.response.status_code, e.response.headers.get("Location"))
    except OSError:
        return
    await ws.close()


def sync_echo(websocket: lightws.sync.ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def sync_main() -> None:
    with lightws.sync.serve(sync_echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port: int = server.port
        with lightws.sync.connect(f"ws://127.0.0.1:{port}/") as websocket:
            websocket.send("hi")
            text = websocket.recv(timeout=10)
            print(text, websocket.ping().wait(1))
        server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
    sync_main()
