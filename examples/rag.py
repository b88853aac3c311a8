"""A RAG pipeline on sarai_llm: the design document's ``RAGPipeline``.

It embeds a small document collection, retrieves the documents closest to the
question (cosine similarity), and asks the LLM to synthesize an answer from
them. Embeddings and answers go through the shared gateway, so they are cached:
a second run embeds nothing and, for the same question, generates nothing.

Try it against the local model server (``make demo`` uses the same one)::

    python scripts/localmodel.py serve          # prints server_root=http://127.0.0.1:PORT
    export LLM_GATEWAY_PRIMARY_PROVIDER=local
    export LLM_GATEWAY_LOCAL_BASE_URL=http://127.0.0.1:PORT LLM_GATEWAY_LOCAL_MODEL=smollm2
    python examples/rag.py "Where is the cache kept?"

Exit code 0 on an answer, 3 when a request failed, 2 on a configuration error.
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import cast

import sarai_llm

DOCUMENTS = [
    "sarai_llm is a thin facade over LiteLLM shared by every module of the system.",
    "The response cache is kept on disk with diskcache, so processes on one host share it.",
    "Cached entries expire after ttl seconds and the least recently used entry is evicted first.",
    "When the primary provider fails, the fallback providers are tried in order.",
    "Ollama runs once for all modules, which saves memory compared with one server per module.",
    "The command sarai-llm health checks every configured provider and exits 1 if one is down.",
]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class RAGPipeline:
    """Embed documents once, retrieve by similarity, synthesize with the LLM."""

    def __init__(self, documents: list[str], top_k: int = 2, max_tokens: int = 120) -> None:
        self.gateway = sarai_llm.get_gateway()
        self.documents = documents
        self.top_k = top_k
        self.max_tokens = max_tokens
        self._vectors: list[list[float]] | None = None

    async def embed_documents(self) -> list[list[float]]:
        if self._vectors is None:
            # One call for the whole list: only the texts missing from the cache go upstream.
            vectors = cast(list[list[float]], await self.gateway.embed(self.documents))
            self._vectors = vectors
        return self._vectors

    async def retrieve(self, query: str) -> list[tuple[float, str]]:
        vectors = await self.embed_documents()
        query_vector = cast(list[float], await self.gateway.embed(query))
        scored = [(cosine(query_vector, v), doc) for v, doc in zip(vectors, self.documents, strict=True)]
        return sorted(scored, reverse=True)[: self.top_k]

    async def synthesize(self, query: str, results: list[str]) -> str:
        context = "\n\n".join(results)
        response = await self.gateway.chat(
            messages=[
                {"role": "system", "content": "Answer the question using only the search results."},
                {"role": "user", "content": f"Query: {query}\n\nResults:\n{context}"},
            ],
            temperature=0.3,
            max_tokens=self.max_tokens,
        )
        return str(response["content"]).strip()

    async def answer(self, query: str) -> tuple[list[tuple[float, str]], str]:
        hits = await self.retrieve(query)
        return hits, await self.synthesize(query, [doc for _, doc in hits])


async def run(query: str) -> None:
    try:
        hits, answer = await RAGPipeline(DOCUMENTS).answer(query)
        print(f"query: {query}")
        print("retrieved:")
        for score, doc in hits:
            print(f"  {score:+.3f}  {doc}")
        print(f"answer: {answer}")
        stats = sarai_llm.get_stats()
        print(f"gateway: {stats['total_requests']} requests, cache hits {stats.get('cache', {}).get('hits', 0)}")
    finally:
        await sarai_llm.aclose()  # close the connections before asyncio.run closes the loop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    query = " ".join(args) or "Where does the cache keep its entries?"
    try:
        asyncio.run(run(query))
    except (sarai_llm.ConfigError, sarai_llm.NoProvidersError, sarai_llm.InvalidRequestError) as exc:
        print(f"rag: {exc}", file=sys.stderr)
        return 2
    except sarai_llm.SaraiLLMError as exc:
        print(f"rag: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
