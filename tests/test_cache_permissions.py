"""The disk cache holds every module's prompts and answers: a directory it creates is private (0700, its files
0600), whatever the umask; a directory that already exists keeps its modes (a team may share one on purpose)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import FaultyUpstream

import sarai_llm
from sarai_llm.cache import DiskStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The most permissive umask (files 0666, directories 0777 unless created with a mode)."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def database_files(directory: Path) -> list[Path]:
    return sorted((directory / "responses").glob("cache.db*"))


def all_private(files: list[Path]) -> bool:
    return {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


@pytest.mark.usefixtures("umask_000")
def test_a_new_directory_and_its_database_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "parent" / "cache"
    store = DiskStore(directory)
    try:
        store.put("k", b"answer" * 10_000, tag="t", ttl=60)  # large: diskcache may write it to a file of its own
        store.bump_epoch()
        files = database_files(directory)
        assert {f.name for f in files} >= {"cache.db", "cache.db-wal", "cache.db-shm"}
        assert all_private(files)
    finally:
        store.close()
    assert mode(directory) == 0o700 and mode(directory / "responses") == 0o700
    assert os.umask(0) == 0  # the store left the process's umask alone
    # Opened again (the directory exists now): sqlite makes its -wal/-shm files with the database's mode.
    again = DiskStore(directory)
    try:
        again.put("k2", b"x", tag="t", ttl=60)
        assert {f.name: mode(f) for f in database_files(directory)} == {
            f.name: 0o600 for f in database_files(directory)
        }
    finally:
        again.close()


@pytest.mark.parametrize("shared", [0o755, 0o2770])
def test_an_existing_directory_keeps_its_mode(tmp_path: Path, shared: int) -> None:
    directory = tmp_path / "team-cache"
    directory.mkdir()
    directory.chmod(shared)
    store = DiskStore(directory)
    try:
        store.put("k", b"answer", tag="t", ttl=60)
    finally:
        store.close()
    assert mode(directory) == shared
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode(directory / "responses" / "cache.db") == 0o666 & ~umask  # as the process creates files: untouched


async def test_the_gateway_creates_a_private_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "home" / ".cache" / "sarai_llm"
    with FaultyUpstream() as up:
        gw = sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": up.base_url, "cache_dir": cache_dir})
        await sarai_llm.chat([{"role": "user", "content": "private"}])
        assert gw.get_stats()["cache"]["size"] == 1
        sarai_llm.reset_gateway()
    assert mode(cache_dir) == 0o700
    assert mode(cache_dir / "responses" / "cache.db") == 0o600
