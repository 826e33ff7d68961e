import pytest

# Shared check modules get pytest's assertion messages too.
pytest.register_assert_rewrite("tests.integration.intake_checks")
