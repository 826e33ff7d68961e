"""The LLM runtime: base checkpoints, LoRA fine-tuning, sampling, `phi` and the Ray jobs.

Everything here imports torch and friends (the `llm` extra), and only when used. Nothing below
the services imports it (the domain, the adapters and the engine stay light; a test checks).
"""
