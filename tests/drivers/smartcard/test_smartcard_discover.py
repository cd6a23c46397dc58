"""``kiosk-profile discover`` finds the PC/SC reader pcscd lists (here vpcd's, with the virtual card process behind
it), and the settings it proposes reach that reader through the real driver. Beside the other discovery tests
(tests/drivers/discovery) because it needs this folder's pcscd."""
from __future__ import annotations

import time
from typing import Any, Callable

from drivers import registry
from drivers.base import MediaState, settings_problems
from drivers.discovery import Confidence, propose_devices
from drivers.discovery.system_probe import pcsc_readers



def wait_media(reader: Any, media: MediaState, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while reader.status().media is not media:
        assert time.monotonic() < deadline, f"the reader's media did not become {media.value} within {timeout} s"
        time.sleep(0.02)


def test_discover_lists_the_pcsc_reader_and_its_proposed_settings_reach_it(card: Any,
                                                                            make_reader: Callable[..., Any]) -> None:
    findings = {f.address: f for f in pcsc_readers()}
    found = findings.get(card.reader_name)
    assert found is not None, sorted(findings)
    assert (found.kind, found.driver, found.confidence) == ("smartcard", "pcsc", Confidence.HIGH)
    assert found.settings == {"reader": card.reader_name} and "pcscd" in found.evidence

    entry = propose_devices([found])["smartcard"]
    assert entry["driver"] == "pcsc"
    assert settings_problems(registry.resolve("smartcard", "pcsc").SETTINGS_SCHEMA, entry["settings"]) == []
    reader = make_reader(**entry["settings"])
    wait_media(reader, MediaState.NOT_PRESENT)
    card.must("insert_card", card="social_security", identity="zhang")
    wait_media(reader, MediaState.PRESENT)      # the proposed reader is the one the card went into
    card.must("remove_card")
    wait_media(reader, MediaState.NOT_PRESENT)
