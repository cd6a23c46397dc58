"""Device discovery for technicians (``kiosk-profile discover``): what is attached, what answered, and a proposed
device profile. Below both ``device_profiles/`` (the CLI) and ``kiosk/`` (maintenance screens may use it), so
neither reaches into the other. Every probe speaks the device's own protocol through the same codecs the drivers
use; nothing here writes to a device more than a status question (never a print, a sale or a card read)."""
from drivers.discovery.model import Confidence, Finding
from drivers.discovery.scan import DiscoveryOptions, discover, propose_devices

__all__ = ["Confidence", "DiscoveryOptions", "Finding", "discover", "propose_devices"]
