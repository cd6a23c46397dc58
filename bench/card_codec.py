"""Card codec figures: how fast the GA 467 frame codec and the card-data parsers run (frames/s, records/s).

* GA 467: the 1295-byte "read text + photo" reply and the 15-byte "find card" reply, decoded from one long stream
  (FrameDecoder, checksum included), and the whole card (frame → split → text block → IdentityDocument);
* social-security card: EF05 + EF06 records (SIMPLE-TLV) → IdentityDocument;
* bank card: FCI / GPO / records (BER-TLV) → masked PAN.

Run: ``.venv/bin/python bench/card_codec.py [--seconds 1.0]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.idcard import protocol as p  # noqa: E402
from drivers.idcard.identity import decode_text_block, encode_text_block  # noqa: E402
from drivers.idcard.simulator import load_identities  # noqa: E402
from drivers.smartcard import bankcard as bc  # noqa: E402
from drivers.smartcard import sscard as ss  # noqa: E402
from drivers.smartcard.simulator import BankCardSim, SocialSecurityCard, load_cards  # noqa: E402


def rate(label: str, unit: str, seconds: float, batch: int, fn: Callable[[], object]) -> float:
    fn()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        done += batch
    per_s = done / (time.perf_counter() - started)
    print(f"{label:<62} {per_s:>12,.0f} {unit}/s   ({1e6 / per_s:8.2f} µs each)")
    return per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    people = load_identities()
    doc = people["zhang"]
    read_reply = p.build_response(p.Sw3.OK, p.pack_card_data(encode_text_block(doc), doc.photo_wlt))
    find_reply = p.build_response(p.Sw3.CARD_FOUND, bytes(4))
    batch = 200
    long_stream = read_reply * batch
    short_stream = find_reply * batch

    def decode(stream: bytes) -> Callable[[], object]:
        return lambda: p.FrameDecoder().decode_all(stream)

    def whole_card() -> object:
        frame = p.decode_frame(read_reply)
        text, photo, _ = p.split_card_data(frame.response().data)
        return decode_text_block(text, photo)

    read_rate = rate("GA 467 read reply (1295 B) frames decoded from a stream", "frames", args.seconds, batch,
                     decode(long_stream))
    print(f"{'':<62} {read_rate * len(read_reply) / 1e6:>12,.1f} MB/s  (115200 baud carries 0.0115 MB/s)")
    rate("GA 467 find reply (15 B) frames decoded from a stream", "frames", args.seconds, batch, decode(short_stream))
    rate("GA 467 read reply → IdentityDocument (frame, split, text block)", "cards", args.seconds, 1, whole_card)

    cards = load_cards()
    card = SocialSecurityCard("zhang", doc, cards["social_security"]["zhang"])
    raw05, raw06 = card.records[5], card.records[6]

    def social_security() -> object:
        ef05 = {r: ss.record_value(v, r) for r, v in raw05.items()}
        ef06 = {r: ss.record_value(v, r) for r, v in raw06.items()}
        return ss.decode_identity(ef05, ef06)

    rate("social-security EF05+EF06 (13 TLV records) → IdentityDocument", "cards", args.seconds, 1, social_security)
    bank = BankCardSim("unionpay_debit", cards["bank"]["unionpay_debit"])
    ppse, fci = bank._ppse_fci(), bank._fci()
    gpo = bytes.fromhex("770E8202 7C00 9408 0801020010010100".replace(" ", ""))
    records = [rec for _, rec in sorted(bank.records.items())]

    def bank_card() -> object:
        bc.parse_directory(ppse)
        bc.parse_application_fci(fci)
        bc.parse_afl(bc.parse_gpo(gpo)[1])
        return bc.masked_pan_from_records(records)

    rate("bank card PPSE + FCI + GPO + records (BER-TLV) → masked PAN", "cards", args.seconds, 1, bank_card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
