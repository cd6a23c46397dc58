"""Kiosk fleet: the health agent that runs in the kiosk (:mod:`fleet.agent`), the controller operators run
(:mod:`fleet.controller`), their MQTT protocol (:mod:`fleet.protocol`), signed commands (:mod:`fleet.signing`) and
the broker's configuration (:mod:`fleet.broker`). See fleet/README.md."""
