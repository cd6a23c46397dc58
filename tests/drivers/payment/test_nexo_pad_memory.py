"""Months of sales on one nexo pad driver: it keeps the POI's transaction reference of the latest sales only (for a
reversal or refund), so its memory stays flat; a sale whose reference was let go is still reversed by its
transaction id, as after a restart."""
from __future__ import annotations

import uuid

import pytest

from drivers.payment import nexo_pad
from drivers.payment.base import TxnStatus

KEPT = 3


def sale(pad, sim) -> str:
    order = "M" + uuid.uuid4().hex[:15].upper()
    sim.control("scenario", name="approve")
    txn = pad.start(order, 1, "unionpay_card")
    result = pad.wait(txn, 10)
    assert result.status is TxnStatus.APPROVED, result
    return order


@pytest.mark.parametrize("driver", ["nexo_tcp", "nexo_serial"])
def test_only_the_latest_sales_references_are_kept(driver, nexo_sim, make_driver, monkeypatch) -> None:
    monkeypatch.setattr(nexo_pad, "POI_TXN_KEPT", KEPT)   # the bound is a setting; a small one keeps the test short
    pad = make_driver(driver, nexo_sim.endpoints)
    orders = [sale(pad, nexo_sim) for _ in range(KEPT + 3)]
    assert list(pad._poi_txn) == orders[-KEPT:]
    assert not pad._running, "finished sales are not kept as running"
    for order in (orders[0], orders[-1]):   # one let go, one kept: both reversed on the simulator's ledger
        assert pad.reverse(order).status is TxnStatus.REVERSED
        assert nexo_sim.control("ledger")["ledger"][order]["net_fen"] == 0
