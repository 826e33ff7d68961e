"""The domain: campaigns, rounds, the ledger's rule, lineage, ids and the backend registry.

Pure: no I/O, no adapters, no services, no LLM runtime (a test enforces it). Importing the
package registers the built-in backends, so a campaign spec validates in any process.
"""

from crowdsft.domain import lora_backend, vector_backend

__all__ = ["lora_backend", "vector_backend"]
