"""Notifications: who is told what, through which channel; reminders, escalations and the delivery log."""
