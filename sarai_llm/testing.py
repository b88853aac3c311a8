"""Test support for modules that use sarai_llm: a fake provider behind the real gateway (README, "Testing").

    async def test_reason(fake_llm):  # the fixture comes with the package (a ``pytest11`` plugin)
        fake_llm.queue("42")
        assert await reason("6 x 7?") == "42"  # reason() calls sarai_llm.chat
        assert fake_llm.last_call.kwargs["temperature"] == 0.2

:class:`FakeGateway` is a real :class:`~sarai_llm.Gateway` whose one provider answers what the
test scripted; validation, errors, stats and (``cache=True``) the cache are the real ones, so a
scripted :class:`~sarai_llm.ProviderError` makes the call raise :class:`~sarai_llm.AllProvidersFailedError`.
While installed (``fake_llm``, or :func:`install_fake_gateway`) it is the process-wide gateway.
This module is cheap to import (pytest loads it at every start); :class:`FakeGateway` loads on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._global import swapped
from ._script import FakeCall, Reply, all_providers_failed

if TYPE_CHECKING:
    from ._fake import FakeGateway

__all__ = ["FakeCall", "FakeGateway", "Reply", "all_providers_failed", "install_fake_gateway"]


@contextmanager
def install_fake_gateway(fake: FakeGateway | None = None) -> Iterator[FakeGateway]:
    """Make ``fake`` (default: a new :class:`FakeGateway`) the process-wide gateway for the ``with`` block.

    The previous gateway is neither closed nor reset: it is put back afterwards, even if the block raises.
    """
    if fake is None:
        from ._fake import FakeGateway

        fake = FakeGateway()
    with swapped(fake):
        yield fake


def __getattr__(name: str) -> Any:
    # The fake is a real gateway: it loads pydantic, which pytest start-up must not pay for.
    if name == "FakeGateway":
        from ._fake import FakeGateway

        return FakeGateway
    raise AttributeError(f"module 'sarai_llm.testing' has no attribute {name!r}")


try:
    import pytest
except ImportError:  # pytest is optional: the fake works without it
    pass
else:

    @pytest.fixture
    def fake_llm() -> Iterator[FakeGateway]:
        """A :class:`FakeGateway` installed for one test: ``"fake response"`` unless scripted, calls in ``.calls``."""
        with install_fake_gateway() as fake:
            yield fake
