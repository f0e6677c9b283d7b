"""The API tests' fixtures, for the reliability tests too."""

from tests.api.conftest import api, tables

__all__ = ["api", "tables"]
