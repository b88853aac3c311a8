"""Test support for modules that use sarai_llm: a fake provider behind the real gateway, and a pytest fixture.

A module's tests need no LLM, no server and no network::

    # your_module/reasoner.py
    import sarai_llm

    async def reason(task: str) -> str:
        r = await sarai_llm.chat([{"role": "user", "content": task}], temperature=0.2)
        return r["content"]

    # tests/test_reasoner.py  (no import of sarai_llm.testing needed)
    async def test_reason(fake_llm):
        fake_llm.queue("42")
        assert await reason("6 x 7?") == "42"
        assert fake_llm.last_call.messages[-1]["content"] == "6 x 7?"
        assert fake_llm.last_call.kwargs["temperature"] == 0.2

The fake sits at the adapter seam: :class:`FakeGateway` is a real
:class:`~sarai_llm.Gateway` whose provider (one, named ``"fake"`` unless a
call asks for another with ``provider=``) answers what the test scripted.
Validation, errors, stats and (with ``cache=True``) the cache are the real
pipeline's: a scripted :class:`~sarai_llm.ProviderError` is a failed attempt,
so the call raises :class:`~sarai_llm.AllProvidersFailedError` as it would
in production; any other scripted exception is raised as it is.

The ``fake_llm`` fixture comes with the package: sarai_llm registers this
module as a pytest plugin (entry point ``pytest11``). Outside pytest, use
:func:`install_fake_gateway` as a context manager. While installed, the fake
is the process-wide gateway: ``sarai_llm.chat``, ``stream_chat``, ``embed``,
``health_check``, ``get_stats``, ``clear_cache``, ``get_gateway()`` and the
``*_sync`` functions all use it.

Importing this module is cheap (no LiteLLM, no pydantic): pytest loads it at
start-up in every project where sarai_llm is installed. :class:`FakeGateway`
loads the gateway on first use.
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
    """Make ``fake`` the process-wide gateway for the ``with`` block, then restore the previous one.

    The previous gateway is neither closed nor reset; it is back in place
    afterwards, even when the block raises.

    :param fake: the fake to install (default: a new :class:`FakeGateway`).
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
        """A :class:`FakeGateway` installed as sarai_llm's gateway for one test.

        Every ``sarai_llm.chat`` answers ``"fake response"`` unless the test
        scripts otherwise (``fake_llm.queue("yes", SomeError(...))``); the
        calls are in ``fake_llm.calls``. No server, no network, no LiteLLM.
        """
        with install_fake_gateway() as fake:
            yield fake
