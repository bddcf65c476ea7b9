"""Falco alerts as the receiver reads them: see :mod:`forensics.alert`.

The typed :class:`~forensics.alert.Alert`, its decoder (with issue 11's
refusals of hostile JSON) and its one serialiser live in the low layer, where
the capture pipeline, the report and the analyzers read them too; this module
keeps the receiver's imports working.
"""

from __future__ import annotations

from forensics.alert import (
    MAX_DEPTH,
    MAX_FIELDS,
    PRIORITIES,
    SEVERITY,
    Alert,
    FieldValue,
    InvalidAlert,
    InvalidJson,
    alert_from_json,
    alert_id,
    canonical_priority,
    decode_alert,
    encode_alert,
    fingerprint,
    parse_alert,
    parse_time,
)

__all__ = ["MAX_DEPTH", "MAX_FIELDS", "PRIORITIES", "SEVERITY", "Alert", "FieldValue",
           "InvalidAlert", "InvalidJson", "alert_from_json", "alert_id", "canonical_priority",
           "decode_alert", "encode_alert", "fingerprint", "parse_alert", "parse_time"]
