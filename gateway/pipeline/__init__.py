"""One call, transport-free.

Validation, the plan, dispatch through breakers, the stream relay, caching, accounting, pricing
and status. Nothing here knows a wire protocol.
"""
