"""Fees at the kiosk: the payment journal, the payment use case and reconciler (service), the screens' flow."""
