"""The telephony fixtures (a Twilio-configured app) for the operations tests."""

from tests.telephony.conftest import (  # noqa: F401
    media_server,
    tw_app,
    tw_client,
    tw_settings,
)
