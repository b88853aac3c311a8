"""The notebook path, in a real Jupyter kernel (ipykernel + nbclient) against the real local model.

A notebook cell shows what it prints and nothing else: no warning, no
"Task was destroyed" from a task left on the sync API's background loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

CELLS = {
    "chat": "r = await sarai_llm.chat(MESSAGES, max_tokens=8, temperature=0.0)\n"
    "print(r['provider'], r['cached'], bool(r['content']))",
    "chat_sync": "r = sarai_llm.chat_sync(MESSAGES, max_tokens=8, temperature=0.0)\nprint(r['cached'])",
    "embed_sync": "print(len(sarai_llm.embed_sync('hola')) > 0)",
    "stream": "pieces = [p async for p in sarai_llm.stream_chat(MESSAGES, max_tokens=8, use_cache=False)]\n"
    "print(len(pieces) > 0)",
    "stream_sync": "print(len(list(sarai_llm.stream_chat_sync(MESSAGES, max_tokens=8, use_cache=False))) > 0)",
    "stats": "s = sarai_llm.get_stats()\nprint(s['total_requests'], s['cache']['hits'])",
    "gc": "import gc, time\ngc.collect(); time.sleep(0.2); gc.collect()\nprint('quiet')",
}
EXPECTED = {
    "chat": "local False True\n",
    "chat_sync": "True\n",
    "embed_sync": "True\n",
    "stream": "True\n",
    "stream_sync": "True\n",
    "stats": "5 1\n",
    "gc": "quiet\n",
}


def test_a_notebook_runs_every_api_form_quietly(local_model: Any, tmp_path: Path) -> None:
    settings = {
        "LLM_GATEWAY_PRIMARY_PROVIDER": "local",
        "LLM_GATEWAY_LOCAL_BASE_URL": local_model.server_root,
        "LLM_GATEWAY_LOCAL_MODEL": local_model.model,
        "LLM_GATEWAY_CACHE_DIR": str(tmp_path / "cache"),
    }
    setup = (
        f"import os\nos.environ.update({settings!r})\n"
        "import sarai_llm\n"
        "MESSAGES = [{'role': 'user', 'content': 'Say hello in one word.'}]"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup)] + [nbformat.v4.new_code_cell(code) for code in CELLS.values()]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    workdir = tmp_path / "nb"
    workdir.mkdir()
    # The kernel runs this interpreter (jupyter_client starts "python" kernels with sys.executable).
    # ipykernel may flush one print() in two messages ("True", then "\n") when its flush timer fires in
    # between; coalesce_streams joins them as Jupyter's own front ends show them.
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        coalesce_streams=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()

    assert nb.cells[0].outputs == []
    for cell, name in zip(nb.cells[1:], CELLS, strict=True):
        shown = [(o.get("output_type"), o.get("name"), o.get("text")) for o in cell.outputs]
        assert shown == [("stream", "stdout", EXPECTED[name])], f"cell {name!r} showed {shown}"
