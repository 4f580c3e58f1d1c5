"""on_inbound: the reply handler (INBOUND_HANDLER) run from ``com.vonage.message.inbound.v1``.

A CloudEvent function (functions-framework ``cloud_event`` signature), deployed with a Pub/Sub
trigger on the inbound topic (deploy.sh). With ``INBOUND_DISPATCH=bus`` the inbound webhook
answers Vonage at once and the reply goes out from here, exactly once per message: see
``shared.events.inbound`` and docs/events.md.
"""

from __future__ import annotations

from shared.events.inbound import on_inbound

__all__ = ["on_inbound"]
