"""The language-model path: base checkpoints, LoRA fine-tuning, sampling and `phi` embeddings.

Everything here but `config` imports torch and friends (the `llm` extra), and only when used,
so the services, the engine and the CLI start without them.
"""
