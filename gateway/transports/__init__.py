"""The wire protocols: the gRPC servicer and protobuf conversion, the aiohttp app.

The only code that imports the generated `gateway.v1` modules.
"""
