"""OTP verification over Vonage Verify (v2 or legacy): records, fraud guard, the three flows, callbacks.

Modules are imported directly (``shared.verify.service`` etc.); this package imports
nothing itself so that a function importing one piece does not pay for the others.
"""
