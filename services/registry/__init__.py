"""The registry: children, volunteers, donors and campaigns; the only holder of personal data."""
