"""balance: read the Vonage account balance; below BALANCE_ALERT_THRESHOLD log an ALERT.

Cloud Scheduler calls it every hour (deploy.sh); ``GET`` or ``POST``, bearer API token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_vonage
from shared.web import authorize_caller, endpoint, json_response, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["balance"]


@endpoint("balance")
def balance(request: flask.Request) -> flask.Response:
    """200 ``{balance, currency, auto_reload, threshold?, below_threshold?}``."""
    from shared.balance import check_balance

    settings = get_settings()
    require_method(request, "GET", "POST")
    authorize_caller(request, settings, "balance")
    return json_response(check_balance(settings, get_vonage()))
