"""Statistics tests reuse the sending tests' shop (an application with content)."""

from tests.sending.conftest import shop

__all__ = ["shop"]
