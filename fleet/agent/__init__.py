"""The kiosk's fleet health agent (MQTT, Sparkplug-B-style JSON). See :mod:`fleet.agent.agent` for the integration."""
from fleet.agent.agent import AGENT_VERSION, CommandHandler, CommandResult, FleetAgent, identity_from_profile
from fleet.agent.host import HostProbe

__all__ = ["AGENT_VERSION", "CommandHandler", "CommandResult", "FleetAgent", "HostProbe", "identity_from_profile"]
