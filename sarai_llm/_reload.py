"""Hot reload: a gateway notices edits of the files its settings came from (``GatewayConfig.watched_files``:
the YAML file and ``.env``) and applies them to its next calls. Looked at most every ``every`` seconds; on the
cache-hit path that costs the gateway one comparison of the clock with ``_reload_at``."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._log import log
from .errors import ConfigError, redact

if TYPE_CHECKING:
    from ._gateway import Gateway

__all__ = ["Watcher"]

# Settings a running gateway keeps until a restart: they shape the cache store and the metrics endpoint.
RESTART = (
    *("cache_enabled", "cache_backend", "cache_dir", "cache_namespace", "cache_memory_mb", "redis_url"),
    *("metrics_port", "metrics_host", "metrics_global"),
)
# A file modified less than this ago (nanoseconds) may still be being written (an editor or `git checkout`
# writing in place): it is looked at again next time rather than applied half-written.
SETTLE_NS = 250_000_000


class Watcher:
    """The watched files of one gateway, and what to do when they change."""

    def __init__(self, gateway: Gateway) -> None:
        config = gateway.config
        self.gateway = gateway
        self.files = config.watched_files if config.watch_config else ()
        self.stamps = _stamps(self.files)
        self.lock = threading.Lock()
        self.error: str | None = None  # the last one logged
        self.settle_ns = SETTLE_NS

    def next_look(self, now: float | None = None) -> float:
        """When to look at the files next (``time.perf_counter()``); ``inf``: never."""
        every = self.gateway._reload_every
        return (time.perf_counter() if now is None else now) + every if self.files else math.inf

    def look(self, now: float) -> None:
        """Apply edits of the watched files to the next calls; one thread looks, the others go on."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            self.gateway._reload_at = self.next_look(now)
            if (stamps := _stamps(self.files)) != self.stamps and not self._settling(stamps):
                gone = [file for file, old, new in zip(self.files, self.stamps, stamps, strict=True) if old and not new]
                self.stamps = stamps  # a broken file is read again only once it changes again
                self.reload(gone)
        finally:
            self.lock.release()

    def _settling(self, stamps: list[tuple[int, int] | None]) -> bool:
        """Whether a file was modified within ``settle_ns`` (one modified "in the future", a clock skew, is not)."""
        newest = max((stamp[0] for stamp in stamps if stamp), default=0)
        return 0 <= time.time_ns() - newest < self.settle_ns

    def reload(self, gone: Sequence[Path] = ()) -> None:
        """Read the settings again: apply them, or keep the previous ones and report why. A watched file
        that was ``gone`` (removed) keeps the previous ones too, until it is back: a file missing for a moment
        (a deploy writing it anew) must not send every call to the defaults."""
        gw = self.gateway
        old = gw.config
        try:
            if gone:
                names, were = " and ".join(map(str, gone)), "was" if len(gone) == 1 else "were"
                raise ConfigError(f"{names} {were} removed: put it back, or restart to run without it")
            new = old.reload()
        except ConfigError as exc:
            error = redact(str(exc))
            if error != self.error:
                log.error("configuration not reloaded, the previous settings stay: %s", error)
            self.error = error
            gw.events.reloaded(error)
            return
        gw.config = new
        gw._chain.configure(new)
        gw._routes = {}  # after the new config: a route resolved from now on uses it
        if gw.cache is not None:
            gw.cache.resize(new.cache.ttl, new.cache.max_size)
        if changed := [name for name in RESTART if getattr(old, name) != getattr(new, name)]:
            log.warning("configuration reloaded; a restart is needed to apply %s", ", ".join(changed))
        if not new.watch_config:
            self.files = ()
            gw._reload_at = math.inf
        self.error = None
        gw.events.reloaded(None)
        log.info("configuration reloaded from %s: chain %s", ", ".join(map(str, self.files)), new.chain)


def _stamps(files: Sequence[Path]) -> list[tuple[int, int] | None]:
    """Each file's ``(st_mtime_ns, st_size)``, ``None`` when it is missing: a change of either is an edit."""
    stamps: list[tuple[int, int] | None] = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((stat.st_mtime_ns, stat.st_size))
    return stamps
