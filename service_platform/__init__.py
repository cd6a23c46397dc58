"""Reference service platform (一网通办) that the kiosk is one channel of.

Independent of the kiosk code: the kiosk talks to it only over HTTP (see ``service_platform/openapi.json``).
"""

__version__ = "0.1.0"
