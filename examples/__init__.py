"""Example INBOUND_HANDLER functions (see docs/webhooks.md, "Replying to inbound messages")."""
