"""test_examples.py -- the Python example's promises, with unittest.

Run from this folder with ``python3 -m unittest -v`` against a database
where CREATE EXTENSION dd_clipper has run, named by PGHOST, PGPORT, PGUSER
and PGDATABASE.  Every test makes its own users, so the tests can run again
on the same database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor
from wsgiref.util import setup_testing_defaults

import psycopg
from psycopg_pool import ConnectionPool

import app
import dd_clipper as dd
from subscriber import ClipSubscriber


def new_user(label: str) -> str:
    return f"{label}-{uuid.uuid4()}"


class Base(unittest.TestCase):
    def setUp(self) -> None:
        self.conn = psycopg.connect(autocommit=True)
        self.addCleanup(self.conn.close)

    def audit_clean(self, user_id: str) -> bool:
        return self.conn.execute("SELECT count(*) FROM dd_credit_audit() WHERE user_id = %s",
                                 [user_id]).fetchone()[0] == 0


class Credits(Base):
    def test_32_concurrent_charges_on_a_balance_of_10_exactly_10_succeed(self) -> None:
        user = new_user("race")
        dd.grant_credit(self.conn, user, 10)
        start = threading.Barrier(32)

        def charge(i: int) -> dd.Charge:
            with pool.connection() as conn:
                start.wait()
                return dd.charge_credit(conn, user, amount=1, request_id=f"req-{i}", endpoint="/v1/clip")

        with ConnectionPool("", min_size=32, max_size=32, open=True) as pool:
            pool.wait()
            with ThreadPoolExecutor(32) as ex:
                results = list(ex.map(charge, range(32)))
        ok = [r for r in results if r.ok]
        self.assertEqual(len(ok), 10)
        self.assertEqual(len({r.usage_id for r in ok}), 10)
        self.assertEqual([r.balance for r in results if not r.ok], [0] * 22)
        self.assertEqual(dd.credit_balance(self.conn, user), 0)
        self.assertEqual(self.conn.execute("SELECT count(*) FROM api_usage_log WHERE user_id = %s",
                                           [user]).fetchone()[0], 10)
        self.assertTrue(self.audit_clean(user))

    def test_a_retry_with_the_same_request_id_replays(self) -> None:
        user = new_user("retry")
        dd.grant_credit(self.conn, user, 10)
        first = dd.charge_credit(self.conn, user, amount=3, request_id="req-42",
                                 endpoint="/v1/clip", metadata={"model": "small"})
        self.assertEqual((first.ok, first.balance, first.replayed), (True, 7, False))
        retry = dd.charge_credit(self.conn, user, amount=3, request_id="req-42")
        self.assertEqual(retry, dd.Charge(True, 7, first.usage_id, True))
        self.assertEqual(dd.credit_balance(self.conn, user), 7)
        self.assertTrue(self.audit_clean(user))

    def test_run_paid_request_refunds_failed_work(self) -> None:
        user = new_user("job")
        dd.grant_credit(self.conn, user, 5)
        with ConnectionPool("", min_size=1, max_size=2) as pool:
            done = app.run_paid_request(pool, user, "job-1", 2, lambda: "clip 1")
            self.assertEqual((done["status"], done["result"], done["balance"]), ("done", "clip 1", 3))
            self.assertEqual(app.run_paid_request(pool, user, "job-1", 2, self.fail)["status"], "replayed")
            def fails() -> str:
                raise RuntimeError("transcoder down")
            with self.assertRaisesRegex(RuntimeError, "transcoder down"):
                app.run_paid_request(pool, user, "job-2", 2, fails)
            self.assertEqual(dd.credit_balance(self.conn, user), 3)
            self.assertEqual(app.run_paid_request(pool, user, "job-3", 4, self.fail),
                             {"status": "insufficient_credits", "balance": 3})
        self.assertTrue(self.audit_clean(user))

    def test_grants_once_per_key_and_refunds_once(self) -> None:
        user = new_user("grant")
        self.assertEqual(dd.grant_credit(self.conn, user, 100, reason="pro plan", idempotency_key="inv-1"), 100)
        self.assertEqual(dd.grant_credit(self.conn, user, 100, idempotency_key="inv-1"), 100)
        dd.charge_credit(self.conn, user, amount=30, request_id="r1")
        self.assertEqual(dd.refund_credit(self.conn, user, "r1", reason="timeout"), 100)
        with self.assertRaises(psycopg.Error) as again:
            dd.refund_credit(self.conn, user, "r1")
        self.assertEqual(again.exception.sqlstate, "55000")
        with self.assertRaises(psycopg.DataError) as bad:
            dd.charge_credit(self.conn, user, amount=-1)
        self.assertEqual(bad.exception.sqlstate, "22023")


class ApiKeys(Base):
    def keys_of_every_kind(self) -> tuple[str, dict[str, str]]:
        user = new_user("keys")
        good = dd.create_api_key(self.conn, user, name="laptop")
        dd.grant_credit(self.conn, user, 5)
        revoked = dd.create_api_key(self.conn, user, name="old laptop")
        self.assertTrue(dd.revoke_api_key(self.conn, revoked.key_id))
        expired = dd.create_api_key(self.conn, user, expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1))
        self.conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = %s", [expired.key_id])
        # Well formed but not in the table: a real key whose row is deleted
        # (changing a character would break its checksum: MALFORMED).
        gone = dd.create_api_key(self.conn, user)
        self.conn.execute("DELETE FROM api_keys WHERE id = %s", [gone.key_id])
        broke = dd.create_api_key(self.conn, new_user("broke"))
        last = "B" if good.api_key.endswith("A") else "A"
        return user, {"VALID": good.api_key, "MALFORMED": good.api_key[:-1] + last,
                      "NOT_FOUND": gone.api_key, "REVOKED": revoked.api_key,
                      "EXPIRED": expired.api_key, "INSUFFICIENT_CREDITS": broke.api_key}

    def test_authorize_and_charge_maps_every_code_to_a_distinct_result(self) -> None:
        user, keys = self.keys_of_every_kind()
        results = {code: dd.authorize_and_charge(self.conn, key, amount=2, request_id=f"req-{code}")
                   for code, key in keys.items()}
        for code, result in results.items():
            self.assertEqual(result.code, code)
            self.assertEqual(result.valid, code == "VALID")
            self.assertEqual(result.ok, code == "VALID")
        self.assertEqual(results["VALID"].balance, 3)
        self.assertEqual(results["REVOKED"].user_id, user)
        self.assertEqual(len(set(results.values())), 6, "six distinct results")

        # Through the WSGI endpoint: each code its status and error.
        def call(key: str | None, idem: str) -> tuple[int, dict, dict]:
            environ: dict = {}
            setup_testing_defaults(environ)
            if key is not None:
                environ["HTTP_AUTHORIZATION"] = f"Bearer {key}"
            environ["HTTP_IDEMPOTENCY_KEY"] = idem
            got: dict = {}
            body = b"".join(endpoint(environ, lambda s, h: got.update(status=int(s[:3]), headers=dict(h))))
            return got["status"], json.loads(body), got["headers"]

        with ConnectionPool("", min_size=1, max_size=2) as pool:
            endpoint = app.metered_app(pool, "/v1/clip", 2, lambda user_id, key_id: {"for": user_id})
            statuses = {}
            bodies = set()
            for code, key in keys.items():
                status, body, headers = call(key, f"http-{code}")
                statuses[code] = status
                bodies.add((status, json.dumps(body, sort_keys=True)))
                if code != "VALID":
                    self.assertEqual((status, body["error"]), app.REFUSALS[code])
                    self.assertEqual("WWW-Authenticate" in headers, status == 401)
            self.assertEqual(statuses, {"VALID": 200, "MALFORMED": 401, "NOT_FOUND": 401, "REVOKED": 401,
                                        "EXPIRED": 401, "INSUFFICIENT_CREDITS": 402})
            self.assertEqual(len(bodies), 6, "six distinct responses")
            status, body, headers = call(keys["VALID"], "http-VALID")
            self.assertEqual((status, headers.get("Idempotent-Replayed"), headers["X-Credits-Remaining"]),
                             (200, "true", "1"), "a retry is answered, charged once")
            def broken(user_id: str, key_id: int) -> dict:
                raise RuntimeError("model down")
            endpoint = app.metered_app(pool, "/v1/clip", 1, broken)
            with self.assertRaisesRegex(RuntimeError, "model down"):
                call(keys["VALID"], "http-broken")
            self.assertEqual(dd.credit_balance(self.conn, user), 1, "the failed request's credit came back")
            status, body, _ = call(keys["VALID"], "x" * 300)
            self.assertEqual(status, 400)
            self.assertIn("request_id is too long", body["message"])

    def test_verify_api_key(self) -> None:
        user = new_user("verify")
        key = dd.create_api_key(self.conn, user, name="ci")
        self.assertEqual(dd.verify_api_key(self.conn, key.api_key), dd.KeyCheck(True, "VALID", key.key_id, user))
        self.assertEqual(dd.verify_api_key(self.conn, None), dd.KeyCheck(False, "MALFORMED", None, None))


class Clips(Base):
    def test_pages_walk_all_57_clips_of_a_user_exactly_once(self) -> None:
        user = new_user("pages")
        ids = [r[0] for r in self.conn.execute(
            "INSERT INTO clips (user_id, title, tags) SELECT %s, 'clip ' || i, ARRAY[CASE WHEN i %% 2 = 1 THEN 'odd' ELSE 'even' END]"
            " FROM generate_series(0, 57) i RETURNING id", [user]).fetchall()]
        deleted = ids.pop()
        self.conn.execute("UPDATE clips SET deleted_at = now() WHERE user_id = %s AND id = %s", [user, deleted])
        self.conn.execute("INSERT INTO clips (user_id, title) VALUES (%s, 'not yours')", [new_user("other")])

        pages, cursor = [], None
        while True:
            result = app.list_clips(self.conn, user, 10, cursor)
            pages.append(result)
            if result["isDone"] or len(pages) > 20:
                break
            cursor = result["continueCursor"]
        self.assertEqual([len(p["page"]) for p in pages], [10, 10, 10, 10, 10, 7])
        self.assertEqual([p["isDone"] for p in pages], [False] * 5 + [True])
        self.assertEqual([c["id"] for p in pages for c in p["page"]], sorted(ids, reverse=True))
        oldest = [c["id"] for page in app.all_pages(self.conn, user, 25, sort="oldest") for c in page]
        self.assertEqual(oldest, sorted(ids))
        self.assertEqual(sum(len(p) for p in app.all_pages(self.conn, user, 7, tags=["odd"])), 28)
        with self.assertRaises(psycopg.Error) as other:
            app.list_clips(self.conn, user, 10, pages[0]["continueCursor"], sort="oldest")
        self.assertEqual(other.exception.sqlstate, "22023", "a cursor belongs to its query")


class Subscriber(Base):
    def test_a_clip_change_arrives_through_listen_and_the_feed_returns_it(self) -> None:
        asyncio.run(self.live())

    async def live(self) -> None:
        user = new_user("live")
        received: list[tuple[str, list]] = []

        async def on_changes(changes: list, reason: str) -> None:
            received.append((reason, changes))

        async def until(n: int) -> None:
            for _ in range(1000):
                if len(received) >= n:
                    return
                await asyncio.sleep(0.01)
            self.fail(f"timed out waiting for change {n}")

        async with ClipSubscriber(user, on_changes, timer=3600) as sub:
            start = sub.version
            self.assertEqual(received, [])
            async with await psycopg.AsyncConnection.connect(autocommit=True) as writer:
                cur = await writer.execute("INSERT INTO clips (user_id, title) VALUES (%s, 'Vacuum deep dive') RETURNING id", [user])
                (clip_id,) = await cur.fetchone()
                await until(1)
                self.assertEqual([(c["op"], c["id"], c["clip"]["title"]) for c in received[0][1]],
                                 [("upsert", clip_id, "Vacuum deep dive")])
                await writer.execute("UPDATE clips SET title = 'Vacuum, deeper' WHERE user_id = %s AND id = %s", [user, clip_id])
                await until(2)
                self.assertEqual(received[1][1][0]["clip"]["title"], "Vacuum, deeper")
                await writer.execute("INSERT INTO clips (user_id, title) VALUES (%s, 'x')", [new_user("else")])
                await writer.execute("DELETE FROM clips WHERE user_id = %s AND id = %s", [user, clip_id])
                await until(3)
                self.assertEqual([(c["op"], c["id"], c["clip"]) for c in received[2][1]], [("delete", clip_id, None)])
            self.assertEqual([r for r, _ in received], ["notify"] * 3)
            self.assertGreater(sub.version, start)
            await sub.poll()
            self.assertEqual(len(received), 3, "nothing is delivered twice")
        feed = dd.clip_changes(self.conn, user, since=start)
        self.assertEqual(feed["changes"], received[2][1], "the feed has the clip once, in its last state")


class Events(Base):
    def test_track_event_and_track_events_store_each_event_id_once(self) -> None:
        user = new_user("events")
        self.assertIsInstance(dd.track_event(self.conn, user, "clip.viewed", {"clip": 42}, event_id="evt-1"), int)
        self.assertIsNone(dd.track_event(self.conn, user, "clip.viewed", {"clip": 42}, event_id="evt-1"))
        stored = dd.track_events(self.conn, [
            {"user_id": user, "event": "clip.saved", "event_id": "evt-2", "properties": {"clip": 42}},
            {"user_id": user, "event": "clip.saved", "event_id": "evt-2"},
            {"user_id": user, "event": "clip.viewed", "event_id": "evt-1"},
            {"user_id": user, "event": "login", "occurred_at": dt.datetime(2026, 3, 1, 10, tzinfo=dt.timezone.utc)},
            {"user_id": user, "event": "search", "occurred_at": 1772359200000},
        ])
        self.assertEqual(stored, 3)


if __name__ == "__main__":
    unittest.main()
