"""Face-verification settings as the device profile gives them (``face:`` block), with their JSON Schema.

Default threshold: face_recognition's own guidance is 0.6 (its README: "lower is more strict", 0.6 is typical best
performance, the dlib model scores 99.38 % on LFW at that value). The kiosk uses a stricter **0.55**: an impostor
accepted at a government counter costs more than a genuine citizen asked to try again (or routed to staff). The
measured table behind the choice is in tests/data/README.md (``bench/face_distance_table.py`` prints it, and
tests/kiosk/face/test_face_evaluation.py fails when the threshold leaves the measured gap between the largest
genuine and the smallest impostor distance: 0.513 … 0.590 with 7 people).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from kiosk.face.engine import EngineSettings
from kiosk.face.liveness import LivenessSettings

DEFAULT_THRESHOLD = 0.55

FACE_SETTINGS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "face verification",
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean", "default": True},
        "threshold": {"type": "number", "exclusiveMinimum": 0.2, "maximum": 0.6, "default": DEFAULT_THRESHOLD,
                      "description": "largest 128-d distance accepted as the same person (face_recognition: 0.6; "
                                     "kiosk default 0.55, see tests/data/README.md)"},
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3,
                         "description": "failed attempts before the citizen is offered another route"},
        "attempt_timeout_s": {"type": "number", "minimum": 5, "maximum": 120, "default": 30},
        "challenges": {"type": "array", "items": {"enum": ["blink", "turn", "turn_left", "turn_right"]},
                       "minItems": 1, "maxItems": 4, "default": ["blink", "turn"],
                       "description": "liveness requests, asked in a random order ('turn': left or right at random)"},
        "alternatives": {"type": "array",
                         "items": {"enum": ["staff_assistance", "continue_without_identity", "card_only"]},
                         "minItems": 1, "uniqueItems": True,
                         "default": ["staff_assistance", "continue_without_identity"]},
        "detection": {
            "type": "object",
            "properties": {
                "upsample": {"type": "integer", "minimum": 0, "maximum": 2, "default": 0},
                "reference_upsample": {"type": "integer", "minimum": 0, "maximum": 3, "default": 2},
                "min_score": {"type": "number", "minimum": -1, "maximum": 3, "default": 0.3},
                "other_face_min_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.33},
                "num_jitters": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "max_width": {"type": "integer", "minimum": 160, "maximum": 4096, "default": 800},
            },
            "additionalProperties": False,
        },
        "liveness": {
            "type": "object",
            "properties": {
                "calibration_frames": {"type": "integer", "minimum": 1, "maximum": 30, "default": 3},
                "frontal_max_yaw": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.12},
                "blink_closed_ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.65},
                "blink_open_ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1.5, "default": 0.85},
                "turn_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.11},
                "return_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.06},
                "turn_frames": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
                "step_timeout_s": {"type": "number", "minimum": 1, "maximum": 60, "default": 8},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class FaceSettings:
    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD
    max_attempts: int = 3
    attempt_timeout_s: float = 30.0
    challenges: tuple[str, ...] = ("blink", "turn")
    alternatives: tuple[str, ...] = ("staff_assistance", "continue_without_identity")
    detection: EngineSettings = field(default_factory=EngineSettings)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "FaceSettings":
        """Validate a profile's ``face:`` block (ValueError naming every bad field) and build the settings."""
        import jsonschema

        data = dict(data or {})
        errors = sorted(jsonschema.Draft202012Validator(FACE_SETTINGS_SCHEMA).iter_errors(data),
                        key=lambda e: list(e.absolute_path))
        if errors:
            raise ValueError("face settings: " + "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or '(face)'}: {e.message}" for e in errors))
        detection = EngineSettings(**data.pop("detection", {}))
        liveness = LivenessSettings(**data.pop("liveness", {}))
        for key in ("challenges", "alternatives"):
            if key in data:
                data[key] = tuple(data[key])
        known = {f.name for f in fields(cls)}
        return cls(detection=detection, liveness=liveness, **{k: v for k, v in data.items() if k in known})
