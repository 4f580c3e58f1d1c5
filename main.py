"""Entry points for Google Cloud Functions (functions-framework loads main.py from the source root).

Deploy each one on its own: ``--entry-point send`` and so on (see deploy.sh). ``on_inbound`` is a
CloudEvent function (a Pub/Sub trigger); the others are HTTP functions.
"""

from functions.balance import balance
from functions.deliver import deliver
from functions.inbound import inbound
from functions.on_inbound import on_inbound
from functions.send import send
from functions.status import status
from functions.verify_cancel import verify_cancel
from functions.verify_check import verify_check
from functions.verify_next import verify_next
from functions.verify_start import verify_start

__all__ = [
    "balance",
    "deliver",
    "inbound",
    "on_inbound",
    "send",
    "status",
    "verify_cancel",
    "verify_check",
    "verify_next",
    "verify_start",
]
