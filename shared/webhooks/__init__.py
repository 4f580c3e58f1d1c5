"""Vonage webhooks: authenticity, parsing every format, dedupe, reassembly, opt-out, replies, receipts."""
