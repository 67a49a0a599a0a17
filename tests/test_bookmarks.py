"""The bookmark never passes a record the scan read in an older version."""

from __future__ import annotations

import email.utils

import pendulum
import pytest

from tests.helpers import CLIENT_ID, CLIENT_SECRET, TapRunner
from tests.scripted import Reply, ScriptedServer

pytestmark = pytest.mark.sandbox

T0 = pendulum.datetime(2025, 3, 10, 15, 0, 0)


def coupa_time(moment: pendulum.DateTime) -> str:
    """As Coupa writes it: the instance's offset (here Los Angeles)."""
    return moment.in_timezone("America/Los_Angeles").isoformat()


def invoice(record_id: int, updated: pendulum.DateTime) -> dict[str, object]:
    return {"id": record_id, "updated-at": coupa_time(updated)}


@pytest.mark.parametrize(
    ("margin", "keeps_it"), [("PT5M", True), ("PT0S", False)], ids=["margin", "no-margin"]
)
def test_a_record_updated_before_the_date_stamp_is_read_again(
    tap: TapRunner, margin: str, keeps_it: bool
) -> None:
    """Page 0 is queried at T0; record 2 on it changes at T0+1s; the Date header says T0+2s.

    A later page holds a record updated at T0+5s, so min(latest, Date) is the Date stamp:
    without a margin the bookmark lands after record 2's new ``updated-at``, and the next
    sync's filter would never return it.
    """
    old = T0 - pendulum.duration(days=3)
    record_2_updated = T0 + pendulum.duration(seconds=1)
    stamp = email.utils.formatdate((T0 + pendulum.duration(seconds=2)).timestamp(), usegmt=True)
    with ScriptedServer() as server:
        server.script("/oauth2/token", Reply(body={"access_token": "t", "expires_in": 86399}))
        server.script(
            "/api/invoices",
            Reply(
                body=[invoice(1, old), invoice(2, old), invoice(3, old)], headers={"Date": stamp}
            ),
            Reply(body=[invoice(3, old), invoice(4, T0 + pendulum.duration(seconds=5))]),
            Reply(body=[]),
        )
        config = {
            "base_url": server.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "page_size": 3,
            "max_concurrency": 1,
            "bookmark_safety_margin": margin,
        }
        out = tap.run(config, ["invoices"])
    assert out.ids("invoices") == {1, 2, 3, 4}
    bookmark = pendulum.parse(out.state["bookmarks"]["invoices"]["replication_key_value"])
    assert isinstance(bookmark, pendulum.DateTime)
    assert (bookmark <= record_2_updated) is keeps_it, bookmark
    if keeps_it:
        assert bookmark == T0 + pendulum.duration(seconds=2) - pendulum.duration(minutes=5)
