"""Imports every command module so each registers itself on the app."""

from crowdsft.cli import (
    campaigns,  # noqa: F401
    chat,  # noqa: F401
    contributors,  # noqa: F401
    dlq,  # noqa: F401
    exports,  # noqa: F401
    feedback,  # noqa: F401
    llm,  # noqa: F401
    operators,  # noqa: F401
    rounds,  # noqa: F401
    schemas,  # noqa: F401
    simulation,  # noqa: F401
)
