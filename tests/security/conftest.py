"""Hostile tests: what an attacker with network access (or another enrolled kiosk) can and cannot do."""
