"""Opt-out keywords match whole messages only."""

from __future__ import annotations

import pytest

from shared.webhooks.keywords import match_keyword


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "STOPALL", "unsubscribe", "Cancel", "END", "quit.", "ARRET", "Arrêt"])
def test_opt_out_keywords(text):
    assert match_keyword(text).action == "optout"


@pytest.mark.parametrize("text", ["START", "unstop", "Start."])
def test_opt_in_keywords(text):
    assert match_keyword(text).action == "optin"


def test_help_keyword():
    assert match_keyword("help?").action == "help"


@pytest.mark.parametrize("text", [None, "", "please stop", "stop it", "STOP" + " " * 60 + "please", "starting", "STOPPED", "hello"])
def test_not_keywords(text):
    assert match_keyword(text) is None
