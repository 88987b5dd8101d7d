"""The `UpstreamClient` implementations, against raw loopback servers that script every byte."""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

import pytest

from providers.http.aiohttp_client import AiohttpClient
from providers.http.client import ServerDisconnectedError, UpstreamClient, UpstreamResponse
from providers.http.httptools_client import HttptoolsClient
from providers.wire import MalformedReplyError
from tests.fakes.raw_http import HEAD_200, FakeUpstream, chunk, ok, raw, unanswered

BODY = b'{"model":"m","messages":[]}'


@pytest.fixture
async def server() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


CLIENTS = {"aiohttp": AiohttpClient, "httptools": HttptoolsClient}


@pytest.fixture(params=sorted(CLIENTS))
async def client(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamClient]:
    upstream_client: UpstreamClient = CLIENTS[request.param](keepalive_timeout=60.0)
    yield upstream_client
    await upstream_client.close()


async def fetch_body(client: UpstreamClient, server: FakeUpstream) -> bytes:
    """POST `BODY` to the server and return the answer's body."""
    response = await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    return await response.read()


# -- keep-alive and body framing ----------------------------------------------------------------


async def test_sequential_fetches_share_one_connection(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(ok(b"first"), ok(b"second"))
    assert await fetch_body(client, server) == b"first"
    assert await fetch_body(client, server) == b"second"
    assert server.connections_accepted == 1
    assert len(server.peer_ports) == 1
    assert server.connections_ended == 0  # kept for the next call


async def test_chunked_answers_are_dechunked_and_share_one_connection(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    head = HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n"
    # The chunk-size lines are split across writes on purpose.
    first = raw(head + b"5\r\nhel", b"lo\r\n7\r\n, worl", b"d\r\n0\r\n\r\n", pause=0.02)
    second = raw(head + chunk(b"again") + b"0\r\n\r\n")
    server.script(first, second)
    assert await fetch_body(client, server) == b"hello, world"
    assert await fetch_body(client, server) == b"again"
    assert server.connections_accepted == 1
    assert len(server.peer_ports) == 1


async def test_an_answer_framed_by_the_close_is_read_whole_and_not_reused(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(raw(HEAD_200 + b"\r\npart one, ", b"part two", pause=0.02, close=True))
    assert await fetch_body(client, server) == b"part one, part two"
    assert await fetch_body(client, server) == b'{"ok":true}'
    assert server.connections_accepted == 2
    assert len(server.peer_ports) == 2


async def test_connection_close_from_the_server_is_honoured(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    # The server says close but leaves the socket open: only the header tells the client.
    server.script(ok(b"bye", extra=b"Connection: close\r\n"), ok(b"hello again"))
    assert await fetch_body(client, server) == b"bye"
    assert await fetch_body(client, server) == b"hello again"
    assert server.connections_accepted == 2
    assert len(server.peer_ports) == 2


async def test_an_idle_connection_the_server_closed_is_replaced(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(ok(b"one"), ok(b"two"))
    assert await fetch_body(client, server) == b"one"
    await server.close_connections()
    await asyncio.sleep(0.05)  # the client's side of the loop takes in the close
    assert await fetch_body(client, server) == b"two"
    assert server.connections_accepted == 2


async def test_close_drops_pooled_connections_and_refuses_later_calls(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    await fetch_body(client, server)
    await client.close()
    await server.until_connections_ended(1)
    with pytest.raises(RuntimeError):
        await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    with pytest.raises(RuntimeError):
        async with client.post(server.url(), BODY, {}, time_limit=5.0):
            pass
    assert len(server.requests) == 1


# -- the request on the wire --------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b'{"prompt":"h\xc3\xa9llo\r\n\r\nHTTP/1.1 200 OK"}\x00\xff'],
    ids=["empty", "binary"],
)
async def test_the_server_sees_the_request_as_sent(
    server: FakeUpstream, client: UpstreamClient, body: bytes
) -> None:
    headers = {"Authorization": "Bearer sk-test", "Content-Type": "application/json", "X-Id": "r1"}
    url = server.url("/v1/chat/completions?api-version=2024-06-01&x=a%20b")
    await client.fetch(url, body, headers, time_limit=5.0)
    [seen] = server.requests
    assert (seen.method, seen.version) == ("POST", "HTTP/1.1")
    assert seen.target == "/v1/chat/completions?api-version=2024-06-01&x=a%20b"
    assert seen.headers.getall("host") == [f"127.0.0.1:{server.port}"]
    assert seen.headers.getall("content-length") == [str(len(body))]
    assert seen.headers["authorization"] == "Bearer sk-test"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-id"] == "r1"
    assert seen.body == body


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nInjected: 1"},
        {"X-Note": "a\nInjected: 1"},
        {"X-Note": "a\rb"},
        {"X-Note\r\nInjected": "1"},
        {"X-Note\n": "1"},
    ],
    ids=["crlf in value", "lf in value", "cr in value", "crlf in name", "lf in name"],
)
async def test_a_header_that_breaks_framing_is_refused_before_sending(
    server: FakeUpstream, client: UpstreamClient, headers: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="header") as refused:
        await client.fetch(server.url(), BODY, headers, time_limit=5.0)
    assert "Injected" not in str(refused.value)  # a value may be a credential: never repeated
    assert await fetch_body(client, server) == b'{"ok":true}'
    [seen] = server.requests  # only the clean request reached the server
    assert "injected" not in seen.headers
    assert "x-note" not in seen.headers


# -- streaming ----------------------------------------------------------------------------------


async def test_a_stream_yields_each_piece_as_it_arrives(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    events: list[str] = []
    first_taken = asyncio.Event()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"first"))
        await writer.drain()
        with suppress(TimeoutError):  # a client that buffers gets the rest after a second
            async with asyncio.timeout(1.0):
                await first_taken.wait()
        events.append("server sent second")
        writer.write(chunk(b"second") + b"0\r\n\r\n")
        await writer.drain()

    server.script(reply)
    pieces: list[bytes] = []
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        assert response.status == 200
        async for piece in response.content.iter_any():
            pieces.append(piece)
            if len(pieces) == 1:
                events.append("client got first")
                first_taken.set()
    assert pieces[0] == b"first"
    assert b"".join(pieces[1:]) == b"second"
    assert events == ["client got first", "server sent second"]


async def test_a_chunked_stream_yields_the_payload_without_framing(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    head = HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n"
    server.script(raw(head + b"7\r\ndata: ", b"a\r\n", chunk(b"\n\n") + b"0\r\n\r\n", pause=0.02))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        pieces = [piece async for piece in response.content.iter_any()]
    assert b"".join(pieces) == b"data: a\n\n"
    assert all(b"\r\n" not in piece for piece in pieces)


async def test_lines_come_whole_when_the_server_splits_them(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    head = HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n"
    writes = [chunk(b"data: hel"), chunk(b"lo\n\ndata: wor"), chunk(b"ld\n"), chunk(b"tail")]
    server.script(raw(head + writes[0], *writes[1:], b"0\r\n\r\n", pause=0.02))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        lines = [line async for line in response.content]
    assert lines == [b"data: hello\n", b"\n", b"data: world\n", b"tail"]


async def read_by(way: str, response: UpstreamResponse) -> bytes:
    """The whole body of `response`, read the `way` a caller might."""
    if way == "pieces":
        return b"".join([piece async for piece in response.content.iter_any()])
    if way == "lines":
        return b"".join([line async for line in response.content])
    return await response.read()


@pytest.mark.parametrize("way", ["pieces", "lines", "read"])
async def test_a_stream_read_to_its_end_returns_its_connection(
    server: FakeUpstream, client: UpstreamClient, way: str
) -> None:
    server.script(ok(b"line one\nline two\n"), ok(b"next"))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        assert await read_by(way, response) == b"line one\nline two\n"
    assert await fetch_body(client, server) == b"next"
    assert server.connections_accepted == 1


async def test_leaving_a_stream_before_its_end_drops_the_connection(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(raw(HEAD_200 + b"Content-Length: 10\r\n\r\nabc"), ok(b"next"))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        assert response.status == 200
    await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b"next"
    assert server.connections_accepted == 2


async def test_close_on_a_response_drops_the_connection(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(raw(HEAD_200 + b"Content-Length: 10\r\n\r\nabc"), ok(b"next"))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        response.close()
        await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b"next"
    assert server.connections_accepted == 2


# -- time limits and cancellation ---------------------------------------------------------------


async def test_a_server_that_never_answers_times_out(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(raw(), ok(b"after"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await client.fetch(server.url(), BODY, {}, time_limit=0.3)
    assert 0.25 <= loop.time() - started < 3.0
    await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b"after"
    assert server.connections_accepted == 2


async def test_a_stream_that_stalls_mid_body_times_out(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    head = HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n"
    server.script(raw(head + chunk(b"first")), ok(b"after"))
    pieces: list[bytes] = []

    async def stream() -> None:
        async with client.post(server.url(), BODY, {}, time_limit=0.3) as response:
            async for piece in response.content.iter_any():
                pieces.append(piece)

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await stream()
    assert pieces == [b"first"]
    assert 0.25 <= loop.time() - started < 3.0
    await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b"after"
    assert server.connections_accepted == 2


@pytest.mark.parametrize(
    "sent",
    [b"", HEAD_200 + b"Content-Length: 10\r\n\r\nabc"],
    ids=["before the head", "mid-body"],
)
async def test_cancelling_a_fetch_propagates_and_drops_its_connection(
    server: FakeUpstream, client: UpstreamClient, sent: bytes
) -> None:
    server.script(raw(sent), ok(b"after"))
    task = asyncio.create_task(client.fetch(server.url(), BODY, {}, time_limit=None))
    await server.until_requests(1)
    await asyncio.sleep(0.05)  # let the client take in whatever was sent
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b"after"
    assert server.connections_accepted == 2


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        HEAD_200 + b"Content-Length: 10\r\n\r\nabc",
        HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"abc"),
    ],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("way", ["pieces", "read"])
async def test_a_body_cut_short_raises_server_disconnected(
    server: FakeUpstream, client: UpstreamClient, cut: bytes, way: str
) -> None:
    server.script(raw(cut, close=True))
    async with client.post(server.url(), BODY, {}, time_limit=5.0) as response:
        with pytest.raises(ConnectionError) as raised:
            await read_by(way, response)
    assert isinstance(raised.value, ServerDisconnectedError)
    assert await fetch_body(client, server) == b'{"ok":true}'
    assert server.connections_accepted == 2


async def test_a_closed_port_refuses_the_connection(client: UpstreamClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await client.fetch(f"http://127.0.0.1:{port}/v1", BODY, {}, time_limit=5.0)


async def test_garbage_instead_of_a_status_line_is_a_malformed_reply(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(raw(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n"))
    with pytest.raises(MalformedReplyError):
        await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    await server.until_connections_ended(1)
    assert await fetch_body(client, server) == b'{"ok":true}'


# -- what the answer says -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress)],
    ids=["gzip", "deflate"],
)
async def test_a_compressed_answer_is_decoded(
    server: FakeUpstream,
    client: UpstreamClient,
    encoding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    payload = b'{"choices":[{"text":"' + b"so much text " * 200 + b'"}]}'
    wire = compress(payload)
    server.script(ok(wire, extra=b"Content-Encoding: %s\r\n" % encoding.encode()))
    response = await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    assert response.headers["content-encoding"] == encoding
    assert await response.read() == payload


async def test_a_rate_limit_answer_is_returned_not_raised(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    body = b'{"error":{"message":"slow down"}}'
    server.script(
        raw(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nX-Multi: a\r\nX-Multi: b\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
    )
    response = await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    assert response.status == 429
    assert response.headers["retry-after"] == "3"
    assert response.headers["RETRY-AFTER"] == "3"
    assert response.headers.getall("x-multi") == ["a", "b"]
    assert await response.read() == body


# -- a pooled connection the server closed --------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_pooled_connection_closed_as_it_is_reused_is_retried_once_on_a_new_one(
    server: FakeUpstream, client: UpstreamClient, reset: bool
) -> None:
    # The server closes the kept-alive connection as the second request arrives on it, as a
    # server whose idle timer fires just then does: nothing of that request was processed.
    server.script(ok(b"first"), unanswered(reset=reset), ok(b"second"))
    assert await fetch_body(client, server) == b"first"
    assert await fetch_body(client, server) == b"second"
    first, unanswered_copy, retried = server.requests
    assert unanswered_copy.peer_port == first.peer_port  # sent on the pooled connection
    assert retried.peer_port != first.peer_port  # and again on a new one
    assert server.connections_accepted == 2


async def test_the_retry_is_made_once(server: FakeUpstream, client: UpstreamClient) -> None:
    server.script(ok(b"first"), unanswered(), unanswered(), ok(b"third"))
    assert await fetch_body(client, server) == b"first"
    with pytest.raises(ServerDisconnectedError):
        await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    assert len(server.requests) == 3  # the first call, the unanswered one and its one retry


async def test_a_new_connection_closed_unanswered_is_not_retried(
    server: FakeUpstream, client: UpstreamClient
) -> None:
    server.script(unanswered(), ok(b"not reached by a retry"))
    with pytest.raises(ServerDisconnectedError):
        await client.fetch(server.url(), BODY, {}, time_limit=5.0)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "cut",
    [HEAD_200 + b"Content-Le", HEAD_200 + b"Content-Length: 10\r\n\r\nabc"],
    ids=["mid-head", "mid-body"],
)
async def test_a_reused_connection_closed_mid_answer_is_not_retried(
    server: FakeUpstream, client: UpstreamClient, cut: bytes
) -> None:
    # The server began to answer: it may have acted on the request, so it is not sent again.
    server.script(ok(b"first"), raw(cut, close=True), ok(b"not reached by a retry"))
    assert await fetch_body(client, server) == b"first"
    with pytest.raises((ConnectionError, MalformedReplyError)):
        await fetch_body(client, server)
    assert len(server.requests) == 2
