"""What Vonage's delivery error codes mean (vonage-api.md sections 3 and 6.2).

Receipts carry a bare code; we store it together with its meaning so a user reading a
message record does not need the docs open. Unknown codes keep the code and say so.
"""

from __future__ import annotations

__all__ = ["DLR_ERRORS", "MESSAGES_ERRORS", "describe_dlr_error", "describe_messages_error"]

# SMS API delivery receipt `err-code` (vonage-api.md section 3).
DLR_ERRORS: dict[str, str] = {
    "0": "Delivered",
    "1": "Unknown: no reason determined",
    "2": "Absent subscriber (temporary)",
    "3": "Absent subscriber (permanent)",
    "4": "Call barred by user",
    "5": "Portability error",
    "6": "Anti-spam rejection",
    "7": "Handset busy",
    "8": "Network error",
    "9": "Illegal number (the user opted out from this service)",
    "10": "Illegal message (bad parameter, e.g. wrong encoding flag)",
    "11": "Unroutable",
    "12": "Destination unreachable",
    "13": "Subscriber age restriction",
    "14": "Number blocked by carrier",
    "15": "Prepaid insufficient funds",
    "50": "Entity filter (entity-id wrong or missing)",
    "51": "Header filter (sender ID wrong or missing)",
    "52": "Content filter (content-id wrong or missing)",
    "53": "Consent filter",
    "54": "Regulation error",
    "99": "General error (route error)",
}

# Messages API status webhook `error` codes (vonage-api.md section 6.2).
MESSAGES_ERRORS: dict[str, str] = {
    "1000": "Throttled",
    "1010": "Missing parameters",
    "1020": "Invalid parameters",
    "1021": "Invalid tag",
    "1022": "Invalid template",
    "1030": "Internal error",
    "1040": "Invalid message",
    "1050": "Number barred",
    "1060": "Partner account barred",
    "1070": "Provider quota exceeded",
    "1080": "Account not enabled for REST",
    "1090": "Binary message too long",
    "1100": "Communication failed",
    "1120": "Illegal sender address",
    "1130": "Invalid TTL",
    "1140": "Facility not allowed",
    "1150": "Invalid message class",
    "1160": "Non-whitelisted destination (trial account: add it in the dashboard)",
    "1170": "Invalid recipient",
    "1180": "Destination temporarily unavailable",
    "1190": "Absent subscriber (permanent)",
    "1200": "Portability error",
    "1210": "Anti-spam rejection",
    "1220": "Handset busy",
    "1230": "Temporary network failure",
    "1240": "Illegal number (the user opted out)",
    "1241": "Too many send requests",
    "1242": "Number pool missing",
    "1250": "Unroutable",
    "1251": "Unroutable",
    "1260": "Destination unreachable",
    "1270": "Subscriber age restriction",
    "1280": "Number blocked by carrier",
    "1282": "Rejected by provider",
    "1290": "Prepaid insufficient funds",
    "1300": "Not on the provider's network",
    "1310": "Unsuitable device",
    "1320": "Message already sent",
    "1330": "Delivery failed (unknown reason)",
    "1331": "Provider error",
    "1340": "Outside the allowed window (e.g. WhatsApp 24-hour window)",
    "1350": "Phone matching fee",
    "1360": "TTL expired",
    "1370": "Expired Facebook token",
    "1380": "Invalid resource URL",
    "1381": "Resource too large",
    "1382": "Unsupported resource type",
    "1460": "Daily limit reached (10DLC)",
    "1461": "Provider auto-limiting",
    "1480": "Entity filter",
    "1481": "Header filter",
    "1482": "Content filter",
    "1483": "Consent filter",
    "1484": "Compliance filter",
    "1490": "SMS segment timeout (not every segment was confirmed within 5 minutes)",
    "2001": "Email error",
    "2002": "Email error",
    "2003": "Email error",
}


def describe_dlr_error(code: str | None) -> str | None:
    """The meaning of an SMS API receipt ``err-code``; None for no error."""
    if code is None or code in ("", "0"):
        return None
    return DLR_ERRORS.get(code, f"Unknown error code {code}")


def describe_messages_error(code: str | None) -> str | None:
    """The meaning of a Messages API status error code; None when there is no code."""
    if not code:
        return None
    if code in MESSAGES_ERRORS:
        return MESSAGES_ERRORS[code]
    if code.isdigit() and 1400 <= int(code) <= 1451:
        return "Channel, sender, recipient, type, client_ref or context validation failed"
    if code.isdigit() and 1470 <= int(code) <= 1476:
        return "Blocked by Fraud Defender / do-not-originate rules"
    return f"Unknown error code {code}"
