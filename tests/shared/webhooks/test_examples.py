"""The README's example handlers answer as documented."""

from __future__ import annotations

from examples import echo_bot, keyword_bot
from shared.webhooks.inbound import load_handler


def test_echo_bot():
    assert echo_bot.handle({"text": " hello "}) == "You said: hello"
    assert echo_bot.handle({"text": None, "media": [{"type": "image", "url": "u"}]}) == "Thanks for the image."
    assert echo_bot.handle({"text": ""}) is None
    assert len(echo_bot.handle({"text": "x" * 1000})) == len("You said: ") + echo_bot.MAX_ECHO


def test_keyword_bot():
    assert keyword_bot.handle({"text": "hours?"}) == keyword_bot.ANSWERS["HOURS"]
    assert keyword_bot.handle({"text": "price please"}) == keyword_bot.ANSWERS["PRICE"]
    assert "HOURS" in keyword_bot.handle({"text": "what?"})
    assert keyword_bot.handle({"text": "   "}) is None


def test_the_examples_load_as_inbound_handlers():
    assert load_handler("examples.echo_bot:handle") is echo_bot.handle
    assert load_handler("examples.keyword_bot:handle") is keyword_bot.handle
