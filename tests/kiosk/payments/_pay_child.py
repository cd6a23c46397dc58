"""A kiosk process that pays one order and is killed with SIGKILL at ``KIOSK_PAYMENT_CRASH_AT`` (the crash tests
run it; not a test module). argv: journal platform_url pad_pty order_no channel"""
from __future__ import annotations

import os
import sys

from drivers.payment.ecr_pad import EcrPaymentPad
from kiosk.payments.journal import PaymentJournal
from kiosk.payments.service import PaymentConfig, PaymentService
from kiosk.platform_client import PlatformClient
from kiosk.request_signing import KioskRequestSigner


def main() -> int:
    journal_path, url, pty, order_no, channel = sys.argv[1:6]
    signer = KioskRequestSigner.from_file("KSK-340302-0001", os.environ["KIOSK_TEST_SIGNING_KEY"])
    platform = PlatformClient(url, "KSK-340302-0001", signer, timeout_s=10)
    pad = EcrPaymentPad(port=pty, ack_timeout_s=0.2, response_timeout_s=1.5, keepalive_s=0.3).open()
    service = PaymentService(PaymentJournal(journal_path), platform, lambda ch: pad,
                             PaymentConfig(wait_slice_s=0.1, sale_timeout_s=5, query_interval_s=0.2, give_up_s=1.5,
                                           qr_poll_s=0.1, qr_timeout_s=1.0))
    outcome = service.pay(service.find_order(order_no), channel)  # type: ignore[arg-type]
    print(outcome.status, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
