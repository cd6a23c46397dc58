"""The fleet controller: MQTT ingest (shared subscription), state/time series/alerts in SQLite or PostgreSQL, signed
remote commands, the operators' dashboard and the REST API. Run it with ``fleet-controller serve``."""
