"""A PostgreSQL server that goes away and comes back: commands fail clearly while it is away, and the
first one after it is back is served at once, not after the pool's next, ever later, retry."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress

import pytest

from ordercore import ManualClock, ReceiveStock, SequentialIds, StoreUnavailable, bootstrap
from ordercore_adapters.postgres import parse_url
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import AT

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests


class Proxy:
    """A TCP forwarder to the test server that can be taken down (every connection cut, none taken)
    and brought back on the same port, as a server restart or a network outage looks to a client."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for end in (src, dst):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(url: str) -> Iterator[Proxy]:
    target = parse_url(url)
    host = "127.0.0.1" if "127.0.0.1" in target.conninfo or "localhost" in target.conninfo else None
    if host is None:
        pytest.skip("the test server is not on this machine's loopback: no proxy in front of it")
    found = Proxy((host, 5432))
    yield found
    found.down()


def test_the_first_command_after_the_server_is_back_is_served(url: str, proxy: Proxy) -> None:
    through = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert through != url
    app = bootstrap(through, clock=ManualClock(AT), ids=SequentialIds())  # connect_timeout: 10 s
    try:
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=10, reason="open"))
        proxy.down()
        away = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot connect") as info:
            app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=1, reason="away"))
        assert info.value.retryable is False
        # back after 16 s: left to itself, the pool would try next only after 30 s (its pauses double
        # from 1 s), and this command would fail after its 10 s of waiting
        time.sleep(max(0.0, 16 - (time.monotonic() - away)))
        proxy.up()
        app.handle(ReceiveStock(node_id="WH-1", sku="MUG", quantity=5, reason="back"))
        position = app.stock("WH-1", "MUG")
        assert position is not None and position.on_hand == 15  # the failed receipt wrote nothing
    finally:
        app.close()
