"""Without a tracing SDK (the default), a caller's W3C trace context still reaches the logs."""

from __future__ import annotations

import grpc

from gateway.v1 import gateway_pb2 as pb
from gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.processes import spawn

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def test_a_grpc_callers_traceparent_is_on_the_calls_log_lines_with_no_sdk() -> None:
    gateway = await spawn()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            request = pb.CompleteRequest(
                model="mock", messages=[pb.Message(role="user", content="x")]
            )
            await stub.Complete(request, metadata=(("traceparent", TRACEPARENT),))
            await stub.Complete(request)  # and a call without one carries no trace id
    finally:
        assert await gateway.stop() == 0
    finished = [e for e in gateway.logs if e.get("msg") == "request finished"]
    assert [e.get("trace_id") for e in finished] == [TRACE_ID, None]
