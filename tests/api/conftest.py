from tests.api.test_send_api import api, caller  # noqa: F401 - the app under test, its caller
from tests.sending.conftest import shop  # noqa: F401 - the same application to send with
