"""One run, many xdist workers: a shared call budget and one shared local server.

The xdist controller runs a `Coordinator`: a loopback TCP listener with one
thread per connection. Workers (`CoordinatorClient`, address handed over in
``workerinput``) send one line per connection:

``slot``
    Wait for one of the run's ``--rolecheck-concurrency`` call slots; the
    answer ``ok`` means the slot is held *until the connection closes*. A
    worker that crashes or is killed closes its connections with it, so a slot
    can never leak.
``server``
    Start the bundled local server if it is not running yet (once per run) and
    answer ``{"base_url": ...}``, or ``{"error": ...}`` with the reason.

Standard library only, like the plugin's other import-time modules.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from ..errors import BackendError

# workerinput key carrying the controller's address to the workers
WORKERINPUT_KEY = "rolecheck_coordinator"
_SLOT = b"slot\n"
_SERVER = b"server\n"
_OK = b"ok\n"


class Coordinator:
    """Controller side: hands out call slots and the local server's address.

    Parameters
    ----------
    concurrency : int
        Calls in flight across every worker of the run.
    start_server : callable
        Starts the local server (idempotent) and returns its base URL.
    """

    def __init__(self, *, concurrency: int, start_server: Callable[[], str]) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)
        self._start_server = start_server
        self._server_lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        self.address = f"{host}:{port}"
        self._closed = False
        threading.Thread(target=self._accept, name="rolecheck-coordinator", daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections (held slots end with their connections)."""
        self._closed = True
        with contextlib.suppress(OSError):
            # shutdown wakes the thread blocked in accept(); close alone does not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            command = reader.readline()
            if command == _SLOT:
                with self._slots:
                    connection.sendall(_OK)
                    reader.read()  # until the worker closes: the call is over
            elif command == _SERVER:
                with self._server_lock:
                    try:
                        answer = {"base_url": self._start_server()}
                    except Exception as exc:
                        answer = {"error": str(exc)}
                connection.sendall(json.dumps(answer).encode() + b"\n")


class CoordinatorClient:
    """Worker side of `Coordinator`.

    Parameters
    ----------
    address : str
        ``host:port`` from the controller's ``workerinput``.
    """

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port = host, int(port)

    def _unreachable(self, exc: OSError) -> BackendError:
        return BackendError(
            f"could not reach the xdist controller's rolecheck coordinator at "
            f"{self._host}:{self._port} ({exc}); with pytest-socket, allow it with "
            "--allow-hosts=127.0.0.1"
        )

    def _connect(self) -> socket.socket:
        try:
            return socket.create_connection((self._host, self._port))
        except OSError as exc:
            raise self._unreachable(exc) from exc

    def server_url(self) -> str:
        """Have the controller start the local server (once per run); its base URL.

        Raises
        ------
        BackendError
            If the controller could not start it (the message says why).
        """
        with self._connect() as connection, connection.makefile("rb") as reader:
            connection.sendall(_SERVER)
            answer = json.loads(reader.readline() or b"{}")
        if "base_url" not in answer:
            raise BackendError(answer.get("error", "the xdist controller closed the connection"))
        return str(answer["base_url"])

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the run's call slots (blocking)."""
        with self._connect() as connection:
            connection.sendall(_SLOT)
            if connection.recv(len(_OK)) != _OK:
                raise BackendError("the xdist controller closed the call-slot connection")
            yield

    @contextlib.asynccontextmanager
    async def slot_async(self) -> AsyncIterator[None]:
        """Hold one of the run's call slots (asyncio)."""
        import asyncio  # only live xdist runs pay for it

        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except OSError as exc:
            raise self._unreachable(exc) from exc
        try:
            writer.write(_SLOT)
            await writer.drain()
            if await reader.read(len(_OK)) != _OK:
                raise BackendError("the xdist controller closed the call-slot connection")
            yield
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
