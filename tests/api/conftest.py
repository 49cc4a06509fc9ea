from tests.sending.conftest import shop  # noqa: F401 - the same application to send with
