"""The fault-injecting TCP proxy (`tests.faults.proxy`) in front of an echo server: it
forwards, a cut drops, blackholes, refuses or holds as promised, and a restore heals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.faults.proxy import TcpProxy

QUIET_S = 0.3
"""How long a blackholed or held connection is watched for an answer that must not come."""


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    async with TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as proxy:
        yield proxy
    server.close()
    await server.wait_closed()


async def connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy.port), 5)


async def echoes(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes) -> bytes:
    reader, writer = conn
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def is_dropped(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bool:
    reader, writer = conn
    try:
        writer.write(b"anyone?")
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), 5) == b""
    except ConnectionError:
        return True


async def is_silent(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bool:
    reader, writer = conn
    writer.write(b"anyone?")
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(100), QUIET_S)
    except TimeoutError:
        return True
    return False


async def test_it_forwards_both_ways(proxy: TcpProxy) -> None:
    assert await echoes(await connect(proxy), b"hello" * 10_000) == b"hello" * 10_000
    assert proxy.connections == 1


async def test_drop_resets_open_connections_blackholes_new_ones_and_restore_heals(
    proxy: TcpProxy,
) -> None:
    before = await connect(proxy)
    await echoes(before, b"ping")
    await proxy.cut()
    assert await is_dropped(before)
    during = await connect(proxy)  # accepted: the client cannot tell the link is dead
    assert await is_silent(during)
    await proxy.restore()
    assert await is_dropped(during)  # closed on restore: nothing it sent was forwarded
    assert await echoes(await connect(proxy), b"back") == b"back"


async def test_refuse_closes_the_port_until_restored(proxy: TcpProxy) -> None:
    before = await connect(proxy)
    await proxy.cut("refuse")
    assert await is_dropped(before)
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    await proxy.restore()
    assert await echoes(await connect(proxy), b"back") == b"back"


async def test_hang_holds_the_bytes_and_delivers_them_after_restore(proxy: TcpProxy) -> None:
    before = await connect(proxy)
    await echoes(before, b"ping")
    await proxy.cut("hang")
    assert await is_silent(before)
    during = await connect(proxy)
    assert await is_silent(during)
    await proxy.restore()
    # what each sent while cut arrives, as after a partition TCP outlived
    assert await asyncio.wait_for(before[0].readexactly(7), 5) == b"anyone?"
    assert await asyncio.wait_for(during[0].readexactly(7), 5) == b"anyone?"
    assert await echoes(before, b"on") == b"on"


async def test_a_target_that_is_down_closes_the_client() -> None:
    async with TcpProxy("127.0.0.1", 1) as nowhere:  # port 1: nothing listens on loopback
        assert await is_dropped(await connect(nowhere))
