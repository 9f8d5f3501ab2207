"""The bundled local model as a backend of a run: started on first live need, shared."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .coordinator import CoordinatorClient
    from .local import LocalServer, SharedServer

# Placeholder endpoint for replaying with --rolecheck-local (replays ignore the host):
# nothing listens on port 9, so an unexpected live call fails loudly.
LOCAL_REPLAY_BASE_URL = "http://127.0.0.1:9/v1"


class LocalBackend:
    """The bundled llama.cpp server, started on first live need, shared by the run.

    Under xdist, ``coordinator`` is the controller's address: the controller
    starts the one server of the run and hands out the run's call slots.
    """

    def __init__(self, coordinator: str | None = None) -> None:
        self._server: LocalServer | SharedServer | None = None
        self._lock = threading.Lock()
        self._coordinator = coordinator

    @property
    def model(self) -> str:
        from .local import DEFAULT_MODEL_ALIAS

        return DEFAULT_MODEL_ALIAS

    def ensure_started(self) -> LocalServer | SharedServer:
        with self._lock:
            if self._server is None:
                if self._coordinator is not None:
                    from .local import SharedServer

                    self._server = SharedServer(self._slots_client().server_url())
                else:
                    from .local import LocalServer

                    self._server = LocalServer().start()
            return self._server

    def slots(self) -> CoordinatorClient | None:
        """The run's shared call budget (xdist workers), else ``None``."""
        return self._slots_client() if self._coordinator is not None else None

    def _slots_client(self) -> CoordinatorClient:
        from .coordinator import CoordinatorClient

        assert self._coordinator is not None
        return CoordinatorClient(self._coordinator)

    @property
    def started(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None and hasattr(server, "stop"):
            server.stop()  # a SharedServer belongs to the controller
