"""``kiosk-profile self-test --level internal|external|interactive PATH`` on a technician's terminal.

The levels are :mod:`drivers.health`'s. At ``external`` the tool says on stderr what it waits for (place the
technician's card on the reader, look at the camera); at ``interactive`` it asks each question on the terminal
(``y``/``n`` read from stdin). The report on stdout is JSON with no personal data (a card number is masked).
"""
from __future__ import annotations

import sys
from typing import Any, Mapping, TextIO

from drivers.health import QUESTIONS, HealthOptions, HealthResult, Level, check_all, summary

PROMPTS = {
    "place_card": {"zh_CN": "请把技术人员的证件放到读卡器上……", "en": "Place the technician's card on the reader…"},
    "look_at_camera": {"zh_CN": "请面对摄像头……", "en": "Look at the camera…"},
}


def terminal_options(level: Level, card_timeout_s: float, face_timeout_s: float = 10.0, stdin: TextIO = sys.stdin,
                     stderr: TextIO = sys.stderr) -> HealthOptions:
    """Prompts on stderr; at the interactive level, answers read from stdin (``y``/``是`` = yes)."""

    def prompt(what: str) -> None:
        texts = PROMPTS.get(what, {})
        print(f"{texts.get('zh_CN', what)} / {texts.get('en', what)}", file=stderr, flush=True)

    def confirm(question: str) -> bool:
        texts = QUESTIONS.get(question, {})
        print(f"{texts.get('zh_CN', question)} / {texts.get('en', question)} [y/n] ", end="", file=stderr,
              flush=True)
        answer = stdin.readline().strip().lower()
        return answer in ("y", "yes", "是", "1")

    return HealthOptions(confirm=confirm if level is Level.INTERACTIVE else None, card_timeout_s=card_timeout_s,
                         face_timeout_s=face_timeout_s, prompt=prompt)


def run(devices: Mapping[str, Any], level: Level, options: HealthOptions,
        kinds: list[str] | None = None) -> tuple[dict[str, Any], bool]:
    """Self-test ``devices`` (or ``kinds`` of them): the JSON report and whether every device passed."""
    results: dict[str, HealthResult] = check_all(devices, level, options, kinds)
    report = {"level": level.value, **summary(results), "results": {k: r.to_dict() for k, r in results.items()}}
    return report, bool(report["ok"])
