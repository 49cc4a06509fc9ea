from tests.api.test_send_api import api  # noqa: F401 - the app under test
from tests.sending.conftest import shop  # noqa: F401 - the same application to send with
