"""Matching: pairings, contacts and the visit schedule, wishes, aid; the pairing and engagement views."""
