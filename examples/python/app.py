"""app.py -- the worked examples: credit deduction done right, a metered
WSGI endpoint, a Convex-style paginated clip list.

Connections come from the libpq environment (PGHOST, PGPORT, PGUSER,
PGDATABASE): ``ConnectionPool("")`` or ``psycopg.connect()`` with no
arguments read them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Iterator, Optional, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

import dd_clipper as dd

T = TypeVar("T")


# Credit deduction ---------------------------------------------------------

def run_paid_request(pool: ConnectionPool, user_id: str, request_id: str, cost: int,
                     work: Callable[[], T]) -> dict[str, Any]:
    """Credit deduction done right (not the seed's read the balance, check
    it, write it back, which oversells as soon as two requests run at once):
    charge first in one call (check and debit under the
    balance row's lock, the request logged, idempotent on request_id), then
    do the work; give the credits back if the work fails.  A retry of a
    charged request_id is "replayed" and charges nothing."""
    with pool.connection() as conn:
        charge = dd.charge_credit(conn, user_id, amount=cost, request_id=request_id)
    if not charge.ok:
        return {"status": "insufficient_credits", "balance": charge.balance}
    if charge.replayed:
        return {"status": "replayed", "balance": charge.balance, "usage_id": charge.usage_id}
    try:
        result = work()
    except Exception as err:
        with pool.connection() as conn:
            dd.refund_credit(conn, user_id, request_id, reason=f"failed: {err}")
        raise
    return {"status": "done", "result": result, "balance": charge.balance, "usage_id": charge.usage_id}


# A metered endpoint -------------------------------------------------------

# Status and error for each code that stops a request: the four key codes
# are 401 (RFC 6750's invalid_token), told apart by error; a good key
# without the credit is 402 Payment Required.
REFUSALS = {
    "MALFORMED": (401, "malformed_api_key"),
    "NOT_FOUND": (401, "unknown_api_key"),
    "EXPIRED": (401, "expired_api_key"),
    "REVOKED": (401, "revoked_api_key"),
    "INSUFFICIENT_CREDITS": (402, "insufficient_credits"),
}

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required"}


def metered_app(pool: ConnectionPool, endpoint: str, cost: int,
                work: Callable[[str, int], Any]) -> Callable[..., Iterator[bytes]]:
    """A WSGI application for one metered endpoint: the key in
    ``Authorization: Bearer``, the client's idempotency key in
    ``Idempotency-Key``; dd_authorize_and_charge verifies, charges and logs in
    one round trip; work(user_id, key_id) makes the JSON body."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        api_key = header[len("Bearer "):] if header.startswith("Bearer ") else None
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]

        def respond(status: int, body: Any) -> Iterator[bytes]:
            start_response(f"{status} {_REASONS[status]}", headers)
            return iter([json.dumps(body).encode()])

        # The client's idempotency key, or one of our own: a charge needs a
        # request id to be refunded.
        request_id = environ.get("HTTP_IDEMPOTENCY_KEY") or str(uuid.uuid4())
        try:
            with pool.connection() as conn:
                auth = dd.authorize_and_charge(conn, api_key, amount=cost, endpoint=endpoint,
                                               request_id=request_id)
        except psycopg.DataError as err:    # SQLSTATE class 22: a bad argument
            return respond(400, {"error": "bad_request", "message": err.diag.message_primary})
        if auth.code != "VALID":
            status, error = REFUSALS[auth.code]
            if status == 401:
                headers.append(("WWW-Authenticate",
                                f'Bearer error="invalid_token", error_description="{error}"'))
            return respond(status, {"error": error, "balance": auth.balance})
        headers.append(("X-Credits-Remaining", str(auth.balance)))
        if auth.replayed:    # a retry of a charged request: answered again, charged once
            headers.append(("Idempotent-Replayed", "true"))
        try:
            body = work(auth.user_id, auth.key_id)
        except Exception:
            # The work failed: the credits go back (once), the server answers 500.
            if not auth.replayed:
                with pool.connection() as conn:
                    dd.refund_credit(conn, auth.user_id, request_id, reason="request failed")
            raise
        return respond(200, body)

    return app


# A Convex-style paginated list --------------------------------------------

def list_clips(conn: dd.Conn, user_id: str, num_items: int, cursor: Optional[str],
               **filters: Any) -> dd.ClipsPage:
    """Convex's ``ctx.db.query("clips")...paginate(paginationOpts)``:
    { page, isDone, continueCursor } from one call of dd_clips_page."""
    return dd.clips_page(conn, user_id, page_size=num_items, cursor=cursor, **filters)


def all_pages(conn: dd.Conn, user_id: str, num_items: int = 50, **filters: Any) -> Iterator[list[dict[str, Any]]]:
    """Every page after the other: each live clip once, in order."""
    cursor = None
    while True:
        result = list_clips(conn, user_id, num_items, cursor, **filters)
        if result["page"]:
            yield result["page"]
        if result["isDone"]:
            return
        cursor = result["continueCursor"]
