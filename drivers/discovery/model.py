"""What a probe found: a device kind, the driver and settings a profile needs for it, how sure we are and why."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Confidence(str, enum.Enum):
    #: the device answered its own protocol correctly (a GA 467 frame with a good checksum, a nexo response, …)
    HIGH = "high"
    #: something answered in a way that fits (a status byte of the right shape, a line ending in CR)
    MEDIUM = "medium"
    #: present but silent or ambiguous (an open serial port that answered nothing)
    LOW = "low"


RANK = {Confidence.HIGH: 3, Confidence.MEDIUM: 2, Confidence.LOW: 1}


@dataclass(frozen=True)
class Finding:
    """One device found. ``address`` is where it was found (port, host:port, queue, camera index); ``evidence``
    says what answered, in words a technician can check (no personal data: a SAM id is a module's serial, never a
    card's content)."""

    kind: str
    driver: str
    address: str
    settings: Mapping[str, Any]
    confidence: Confidence
    evidence: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "driver": self.driver, "address": self.address, "settings": dict(self.settings),
                "confidence": self.confidence.value, "evidence": self.evidence,
                **({"extra": dict(self.extra)} if self.extra else {})}
