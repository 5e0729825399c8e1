"""aiohttp imported on first use instead of with nats-py (the gateway's idle RSS, issue 17).

nats-py imports aiohttp when it is imported, for one thing: its WebSocket transport
(``ws://`` / ``wss://`` NATS URLs). The gateway's HTTP server is uvicorn/Starlette and it
starts no aiohttp health server, so aiohttp (about 10 MiB resident, an eighth of the idle
gateway) is dead weight unless a WebSocket URL is used. :func:`defer_aiohttp` puts a stand-in
module in ``sys.modules`` (with the real ``__spec__``, so ``import aiohttp`` is satisfied by
it); the first attribute anybody reads from it (``aiohttp.ClientSession`` for a WebSocket
URL, ``__path__`` for ``from aiohttp import web``) imports the real package, which then
replaces the stand-in (PEP 562 module ``__getattr__``). ``importlib.util.LazyLoader`` cannot
do this on Python 3.11: the import statement itself reads ``__spec__`` from the module, which
makes a lazy module load at once.

Called first thing by the package ``__init__`` (before anything imports nats-py); a no-op
when aiohttp is already imported (tests, other services in the same process).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


class Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a package until one of its names is used."""

    def __getattr__(self, name: str) -> Any:
        # Called only for names the stand-in lacks: import the real package (it takes the
        # stand-in's place in sys.modules) and answer from it.
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        return getattr(real, name)


def defer_aiohttp() -> None:
    if "aiohttp" in sys.modules:
        return
    spec = importlib.util.find_spec("aiohttp")
    if spec is None:
        return
    stand_in = Deferred("aiohttp")
    stand_in.__spec__ = spec
    stand_in.__loader__ = spec.loader
    sys.modules["aiohttp"] = stand_in
