"""Adaptive stream coalescing: what waited while the caller's transport was busy leaves as one.

A `Coalescer` reads a stream's items in a task of its own while the transport writes; `take()`
hands over everything that came since the last take as `Batch`es, each one message's worth:
text joined, tool-call fragments joined per index (the first id and name kept), reasoning text
joined, and the stream's `Done` (finish reason, usage, cost) in the batch it came with. Nothing
is held back: the transport's `take()` returns as soon as one item is there and the reader would
wait for the upstream, so an idle stream's deltas each leave at once; the first delta is handed
over before the reader goes on, so even a burst does not delay the time to first token. Only a
busy transport sees batches of more than one item.

A batch never spans a head change: content after a new `StreamHead` starts a new batch. With
`merge=False` (the caller's opt-out) every content item is a batch of its own, so the caller
gets one message per upstream chunk; those still leave together when the transport can write
them together (one write of several SSE events).

A failure reaches the transport after everything that came before it (`error`, once
`finished`). Transport-free: the gRPC servicer, the native SSE route and the OpenAI-compatible
route render batches their own way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

from gateway.errors import GatewayError, InternalError, ServiceUnavailableError
from gateway.pipeline.drain import SHUTTING_DOWN
from gateway.pipeline.types import Done, StreamHead, StreamItem
from providers.types import ReasoningDelta, TextDelta, ToolCallDelta

log = logging.getLogger("gateway.core")

#: Characters of text, arguments and reasoning that may wait for the transport (back-pressure).
DEFAULT_LIMIT = 65536
_NO_HEAD = StreamHead("", "", "")


@dataclass(slots=True)
class Batch:
    """The content of one message: what came, merged, under one head."""

    #: Who is answering (the latest head before this content).
    head: StreamHead
    #: The stream's end, when it came in this batch (always its last item).
    done: Done | None = None
    _texts: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    #: index -> [id, name, arguments...], in order of first appearance
    _calls: dict[int, list[str]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The text deltas, joined."""
        return "".join(self._texts)

    @property
    def reasoning(self) -> str:
        """The reasoning text deltas, joined."""
        return "".join(self._reasoning)

    @property
    def tool_call_deltas(self) -> list[ToolCallDelta]:
        """Tool-call fragments joined per index (each call's first id and name), in order of
        first appearance."""
        return [
            ToolCallDelta(index, c[0], c[1], "".join(c[2:])) for index, c in self._calls.items()
        ]

    def add(self, item: TextDelta | ToolCallDelta | ReasoningDelta | Done) -> int:
        """Merge `item` in; return the characters it added."""
        if isinstance(item, TextDelta):
            self._texts.append(item.text)
            return len(item.text)
        if isinstance(item, ToolCallDelta):
            self._add_fragment(item)
            return len(item.arguments)
        if isinstance(item, ReasoningDelta):
            self._reasoning.append(item.text)
            return len(item.text)
        self.done = item
        return 0

    def _add_fragment(self, fragment: ToolCallDelta) -> None:
        call = self._calls.get(fragment.index)
        if call is None:
            self._calls[fragment.index] = [fragment.id, fragment.name, fragment.arguments]
        else:
            call[0] = call[0] or fragment.id
            call[1] = call[1] or fragment.name
            call.append(fragment.arguments)


def content_of(item: StreamItem) -> TextDelta | ToolCallDelta | ReasoningDelta | Done | None:
    """`item` when it is something a message carries; None for heads and reasoning state.

    Reasoning state without text (a signature, redacted data) travels whole in `Done`.
    """
    if isinstance(item, TextDelta | ToolCallDelta | Done):
        return item
    if isinstance(item, ReasoningDelta) and item.text:
        return item
    return None


class Coalescer:
    """Reads a stream's items in its own task; `take()` hands over what piled up, merged.

    The reading task drives the call from its first step to its last (a call has one task).
    """

    def __init__(
        self,
        items: AsyncGenerator[StreamItem, None],
        *,
        merge: bool = True,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._items = items
        self._merge = merge
        self._limit = limit
        self._head = _NO_HEAD
        self._batches: list[Batch] = []
        self._size = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._sent_any = False
        self._task = asyncio.create_task(self._run())
        #: Set once the stream has ended (the rest is then one `take()` away).
        self.finished = False
        #: How the stream failed, once it has ended (None: it finished or is going on).
        self.error: GatewayError | None = None

    async def take(self) -> list[Batch]:
        """The batches since the last take; waits for at least one, or for the end."""
        await self._ready.wait()
        self._ready.clear()
        batches = self._batches
        self._batches = []
        self._size = 0
        self._room.set()
        return batches

    async def aclose(self) -> None:
        """Stop reading (if still reading) and wait for the reading task to end."""
        if not self._task.done():
            self._closing = True
            self._task.cancel()
        await asyncio.wait([self._task])

    def _add(self, content: TextDelta | ToolCallDelta | ReasoningDelta | Done) -> None:
        batches = self._batches
        if self._merge and batches and batches[-1].head is self._head:
            batch = batches[-1]
        else:
            batch = Batch(self._head)
            batches.append(batch)
        self._size += batch.add(content)
        self._ready.set()

    async def _run(self) -> None:
        try:
            async with aclosing(self._items) as items:
                async for item in items:
                    content = content_of(item)
                    if content is not None:
                        first = not self._sent_any
                        self._add(content)
                        if first:
                            # The first delta goes alone, before the reader takes in whatever
                            # else has come: merging never delays the time to first token.
                            self._sent_any = True
                            await asyncio.sleep(0)
                        if self._size > self._limit:
                            self._room.clear()
                            await self._room.wait()
                    elif isinstance(item, StreamHead):
                        self._head = item
        except GatewayError as exc:  # handed over in order, after what came before it
            self.error = exc
        except Exception:
            log.exception("unexpected error during a stream")
            self.error = InternalError("internal error")
        except asyncio.CancelledError:
            if not self._closing:  # cut while waiting for the transport: still an explicit end
                self.error = ServiceUnavailableError(SHUTTING_DOWN)
            raise
        finally:
            self.finished = True
            self._ready.set()
