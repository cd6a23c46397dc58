"""The controller's retention (README "Retention"; run by the sweeper hourly with --retention-days, default 30):
events, cleared alerts, finished commands, dead letters and sample partitions older than the cutoff go; open alerts
and unfinished commands stay whatever their age; the sequence log keeps two minutes. Times are given explicitly
(the store takes ``now``/cutoffs as arguments): no clock to wait for."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, insert, select

from fleet.controller import store as S

DAY = 86_400_000
NOW = 1_790_000_000_000


def count(store: S.Store, table, *where) -> int:
    with store.engine.connect() as conn:
        q = select(func.count()).select_from(table)
        for w in where:
            q = q.where(w)
        return int(conn.execute(q).scalar_one())


def test_controller_retention_rules(tmp_path: Path) -> None:
    store = S.Store(tmp_path / "fleet.db")
    store.create_schema()
    old, new = NOW - 40 * DAY, NOW - 1 * DAY
    with store.engine.begin() as conn:
        for ts in (old, new):
            conn.execute(insert(S.events).values(kiosk_id="K", ts=ts, device="p", code="paper_out",
                                                 severity="critical", active=True, text=""))
            conn.execute(insert(S.dead_letters).values(kiosk_id="K", topic="t", reason="bad", received_at=ts))
            conn.execute(insert(S.seq_log).values(ingested_at=ts, controller="c1", entries="[]"))
        for i, (status, cleared_at) in enumerate((("cleared", old), ("cleared", new), ("open", None))):
            conn.execute(insert(S.alerts).values(kiosk_id="K", rule="paper_out", device=f"p{i}", severity="critical",
                                                 status=status, open_key=None if status == "cleared" else f"K|p{i}",
                                                 detail="", opened_at=old, last_seen_at=old, cleared_at=cleared_at))
        for cid, status, updated in (("c-old-done", "succeeded", old), ("c-new-done", "failed", new),
                                     ("c-old-queued", "queued", old)):
            conn.execute(insert(S.commands).values(id=cid, kiosk_id="K", name="self_test", args="{}", status=status,
                                                   detail="", data="{}", created_by="admin", created_at=old,
                                                   expires_at=old, updated_at=updated))
    cutoff = NOW - 30 * DAY
    store.prune_events(cutoff)
    store.prune_dead_letters(cutoff)
    store.prune_seq_log(NOW - 120_000)
    assert count(store, S.events) == 1 and count(store, S.events, S.events.c.ts == new) == 1
    assert count(store, S.dead_letters) == 1
    assert count(store, S.seq_log) == 0                      # both older than two minutes
    assert count(store, S.alerts) == 2                       # the old cleared alert went; the old open one stays
    assert count(store, S.alerts, S.alerts.c.status == "open") == 1
    with store.engine.connect() as conn:
        ids = sorted(r[0] for r in conn.execute(select(S.commands.c.id)))
    assert ids == ["c-new-done", "c-old-queued"]             # unfinished commands are kept whatever their age
    # dead letters are also capped by count (a flood of garbage stays bounded)
    with store.engine.begin() as conn:
        for _ in range(20):
            conn.execute(insert(S.dead_letters).values(kiosk_id="K", topic="t", reason="bad", received_at=NOW))
    store.prune_dead_letters(cutoff, keep=5)
    assert count(store, S.dead_letters) == 5
