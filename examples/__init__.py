"""Example INBOUND_HANDLER functions (see README, "Replying to inbound messages")."""
