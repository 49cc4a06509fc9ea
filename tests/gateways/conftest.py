from tests.sending.conftest import shop  # noqa: F401 - an application to send with
