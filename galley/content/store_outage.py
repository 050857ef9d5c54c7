"""Whether an error means an object store is (for now) out of reach or refusing writes, and the
circuit that makes writes to such a store fail at once instead of each waiting for its timeout.

An S3 endpoint that does not answer (refused, timed out, connection cut) or answers 5xx after
botocore's retries: SeaweedFS with replication 001 and one of its two volume servers down refuses
every write while it still serves reads (its S3 gateway holds each PUT for 60 s looking for a
writable volume, then answers 500). It passes once the store is back, so the API answers 503 with
Retry-After, never a 500, and the workers leave their job to be taken up again. A missing object
or a full store is not this (MissingObject, StoreFull: their own answers).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from ..store.outage import causes, first_line

try:
    from botocore.exceptions import ClientError, ConnectionError as _Unreachable, HTTPClientError
except ImportError:  # S3 support is optional
    ClientError = _Unreachable = HTTPClientError = None

log = logging.getLogger("galley.content")
RETRY_AFTER_SECONDS = 30
COOL_DOWN_SECONDS = 10.0  # after a failed write, how long the next ones fail at once before one may try
PROBE_PATIENCE_SECONDS = 2.0  # how long a write waits for the outcome of the one trying again


class StoreUnavailable(Exception):
    """A write refused without trying: the store's last write failed as unavailable (see WriteCircuit)."""


def store_unavailable(error: BaseException) -> bool:
    for link in causes(error):
        if isinstance(link, StoreUnavailable):
            return True
        if ClientError is None:
            continue
        if isinstance(link, (_Unreachable, HTTPClientError)):
            return True
        if isinstance(link, ClientError):
            status = link.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 and status != 507  # 507: a full store (StoreFull)
    return False


class WriteCircuit:
    """Writes to one store (an endpoint's bucket), shared by every thread of the process.

    Closed, writes go through. One that fails because the store is unavailable opens it: for
    `cool_down` seconds every write fails at once with StoreUnavailable (a request gets its 503 in
    milliseconds, not after the store's timeouts). Then one write goes as a probe; the writes that
    come meanwhile wait a moment for its outcome: it succeeds, the circuit closes and they go; it
    fails, or has no answer within PROBE_PATIENCE_SECONDS (the store holds it), they fail, and the
    circuit stays open for another cool-down. So writes resume by themselves within seconds of
    the store coming back. Reads never pass here: a store refusing writes may still
    serve them (SeaweedFS does)."""

    def __init__(self, name: str, cool_down: float = COOL_DOWN_SECONDS, clock=time.monotonic) -> None:
        self.name = name
        self.cool_down = cool_down
        self._clock = clock
        self._changed = threading.Condition()
        self._open_until: float | None = None
        self._probing = False
        self.last_failure = ""

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    @contextmanager
    def write(self):
        probe = self._enter()
        try:
            yield
        except BaseException as error:
            self._failed(error, probe)
            raise
        else:
            self._succeeded()

    def _enter(self) -> bool:
        """Whether this write is the probe of an open circuit; raises when it may not go at all."""
        with self._changed:
            # The probe's outcome decides for this write too: a store that is back answers it in
            # moments; one that is not holds it, and this write does not wait for that.
            if not self._changed.wait_for(lambda: not self._probing, timeout=PROBE_PATIENCE_SECONDS):
                raise StoreUnavailable(f"{self.name} is not taking writes: a write failed "
                                       f"({self.last_failure}), and the one trying again has no answer yet")
            if self._open_until is None:
                return False
            if self._clock() < self._open_until:
                raise StoreUnavailable(f"{self.name} is not taking writes: a write failed "
                                       f"({self.last_failure}); trying again shortly")
            self._probing = True
            return True

    def _failed(self, error: BaseException, probe: bool) -> None:
        with self._changed:
            if store_unavailable(error) and not isinstance(error, StoreUnavailable):
                if self._open_until is None:
                    log.warning("writes to %s fail at once for the next %.0f s: %s", self.name,
                                self.cool_down, first_line(error))
                self._open_until = self._clock() + self.cool_down
                self.last_failure = first_line(error)[:200]
            if probe:
                self._probing = False
                self._changed.notify_all()

    def _succeeded(self) -> None:
        with self._changed:
            if self._open_until is not None:
                log.warning("writes to %s go through again", self.name)
            self._open_until = None
            self._probing = False
            self._changed.notify_all()


_circuits: dict[str, WriteCircuit] = {}
_circuits_lock = threading.Lock()


def write_circuit(name: str) -> WriteCircuit:
    """The process's one circuit for `name` (every store object of one bucket shares it)."""
    with _circuits_lock:
        circuit = _circuits.get(name)
        if circuit is None:
            circuit = _circuits[name] = WriteCircuit(name)
        return circuit
