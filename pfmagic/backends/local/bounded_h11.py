"""``BoundedH11``: uvicorn's h11 protocol with the router's header deadline (``limits.py``).

Its own module so that h11 and uvicorn's h11 protocol load only in a router that serves with
them (``PFMAGIC_PURE_PYTHON_HTTP=1``, or no httptools); ``limits.BoundedH11`` loads it.
"""

from __future__ import annotations

import asyncio

import h11

from pfmagic.backends.local.limits import HeadDeadline  # sets up uvicorn without its CLI

# isort: split
from uvicorn.protocols.http.h11_impl import H11Protocol


class BoundedH11(HeadDeadline, H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def _header_expired(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # no complete request head in time
