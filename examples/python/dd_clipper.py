"""dd_clipper.py -- typed wrappers for dd_clipper's functions, with psycopg 3.

Each wrapper calls one function of the extension in named notation, as
DESIGN.md spells the parameters (``dd_charge_credit(user_id => %s, ...)``),
leaves out the arguments the caller did not give so the function's defaults
apply, casts every parameter to its SQL type, and calls set-returning
functions in FROM (``SELECT * FROM f(...)``; ``SELECT (f(...)).*`` would run
the function once per column).  Composite results come back as dataclasses,
jsonb results as dicts (clip objects keep the table's snake_case column
names; Python ints are exact, so versions are plain ints).

The wrappers take a connection (or a cursor-like object with ``execute``)
and run in its transaction: with ``autocommit=True``, or a pool's
``with pool.connection()`` block, each call commits on its own.  Errors are
psycopg's: ``err.sqlstate`` is the SQLSTATE ("22023", "P0002", ...).

clip_changes also has an asyncio twin, aclip_changes, for the subscriber.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Optional, Sequence, TypedDict, Union

from psycopg import AsyncConnection, Connection, sql
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

Conn = Connection[Any]

KeyCode = Literal["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"]


@dataclass(frozen=True)
class Charge:
    """dd_charge: ok = False means not enough credit and nothing written."""
    ok: bool
    balance: Optional[int]
    usage_id: Optional[int]
    replayed: bool


@dataclass(frozen=True)
class NewKey:
    key_id: int
    api_key: str


@dataclass(frozen=True)
class KeyCheck:
    valid: bool
    code: KeyCode
    key_id: Optional[int]
    user_id: Optional[str]


@dataclass(frozen=True)
class Authorization:
    """dd_authorization: valid is True only when the request may proceed."""
    valid: bool
    code: Union[KeyCode, Literal["INSUFFICIENT_CREDITS"]]
    key_id: Optional[int]
    user_id: Optional[str]
    ok: bool
    balance: Optional[int]
    usage_id: Optional[int]
    replayed: bool


class ClipsPage(TypedDict):
    """Convex's paginate() result: page is a list of clip dicts."""
    page: list[dict[str, Any]]
    isDone: bool
    continueCursor: str


class ClipChange(TypedDict):
    op: Literal["upsert", "delete"]
    id: int
    version: int
    clip: Optional[dict[str, Any]]


class ClipChanges(TypedDict):
    changes: list[ClipChange]
    version: int


def _args(*args: tuple[str, Any, str]) -> sql.Composed:
    """Named arguments ``name => %s::type``, leaving out those given as ...
    (Ellipsis: the function's default applies); None is SQL NULL."""
    return sql.SQL(", ").join(
        sql.SQL("{} => {}::{}").format(sql.Identifier(name), sql.Placeholder(), sql.SQL(type_))
        for name, value, type_ in args if value is not ...
    )


def _values(*args: tuple[str, Any, str]) -> list[Any]:
    return [value for _, value, _ in args if value is not ...]


def _call(conn: Conn, template: str, args: Sequence[tuple[str, Any, str]], row_factory: Any = None) -> Any:
    """Run ``template`` (with {args} where the named arguments go) and return
    its one row."""
    query = sql.SQL(template).format(args=_args(*args))
    cur = conn.cursor(row_factory=row_factory) if row_factory else conn.cursor()
    with cur:
        return cur.execute(query, _values(*args)).fetchone()


def _json(obj: Any) -> Any:
    return obj if obj is None or obj is ... else Jsonb(obj)


# Credits ------------------------------------------------------------------

def grant_credit(conn: Conn, user_id: str, amount: int, reason: Optional[str] = ...,
                 idempotency_key: Optional[str] = ...) -> int:
    """dd_grant_credit: adds amount (> 0) credits; a repeated idempotency_key
    grants once.  Returns the new balance."""
    return _call(conn, "SELECT dd_grant_credit({args})", [
        ("user_id", user_id, "text"), ("amount", amount, "bigint"),
        ("reason", reason, "text"), ("idempotency_key", idempotency_key, "text")])[0]


def charge_credit(conn: Conn, user_id: str, amount: int = ..., request_id: Optional[str] = ...,
                  endpoint: Optional[str] = ..., api_key_id: Optional[int] = ...,
                  metadata: Optional[dict[str, Any]] = ...) -> Charge:
    """dd_charge_credit: takes amount (default 1) credits if the balance covers
    them and logs the request, in one statement under the balance row's lock.
    A repeated request_id returns the first outcome with replayed = True."""
    return _call(conn, "SELECT * FROM dd_charge_credit({args})", [
        ("user_id", user_id, "text"), ("amount", amount, "bigint"),
        ("request_id", request_id, "text"), ("endpoint", endpoint, "text"),
        ("api_key_id", api_key_id, "bigint"), ("metadata", _json(metadata), "jsonb")],
        class_row(Charge))


def refund_credit(conn: Conn, user_id: str, request_id: str, reason: Optional[str] = ...) -> int:
    """dd_refund_credit: gives back what request_id was charged, once (P0002
    never charged, 55000 refunded already).  Returns the new balance."""
    return _call(conn, "SELECT dd_refund_credit({args})", [
        ("user_id", user_id, "text"), ("request_id", request_id, "text"),
        ("reason", reason, "text")])[0]


def credit_balance(conn: Conn, user_id: str) -> int:
    """dd_credit_balance: 0 for a user without a balance row."""
    return _call(conn, "SELECT dd_credit_balance({args})", [("user_id", user_id, "text")])[0]


# API keys -----------------------------------------------------------------

def create_api_key(conn: Conn, user_id: str, name: Optional[str] = ...,
                   expires_at: Optional[dt.datetime] = ...) -> NewKey:
    """dd_create_api_key: the key exists only in this result."""
    return _call(conn, "SELECT * FROM dd_create_api_key({args})", [
        ("user_id", user_id, "text"), ("name", name, "text"),
        ("expires_at", expires_at, "timestamptz")], class_row(NewKey))


def verify_api_key(conn: Conn, api_key: Optional[str]) -> KeyCheck:
    """dd_verify_api_key: never an error for a bad key (MALFORMED)."""
    return _call(conn, "SELECT * FROM dd_verify_api_key({args})",
                 [("api_key", api_key, "text")], class_row(KeyCheck))


def revoke_api_key(conn: Conn, key_id: int) -> bool:
    """dd_revoke_api_key: True when this call revoked the key."""
    return _call(conn, "SELECT dd_revoke_api_key({args})", [("key_id", key_id, "bigint")])[0]


def authorize_and_charge(conn: Conn, api_key: Optional[str], amount: int = ...,
                         request_id: Optional[str] = ..., endpoint: Optional[str] = ...,
                         metadata: Optional[dict[str, Any]] = ...) -> Authorization:
    """dd_authorize_and_charge: verify the key and charge its user in one
    round trip."""
    a = _call(conn, "SELECT * FROM dd_authorize_and_charge({args})", [
        ("api_key", api_key, "text"), ("amount", amount, "bigint"),
        ("request_id", request_id, "text"), ("endpoint", endpoint, "text"),
        ("metadata", _json(metadata), "jsonb")], dict_row)
    return Authorization(**{**a, "ok": bool(a["ok"]), "replayed": bool(a["replayed"])})


# Clips --------------------------------------------------------------------

def clips_page(conn: Conn, user_id: str, page_size: int = ..., cursor: Optional[str] = ...,
               search: Optional[str] = ..., tags: Optional[Sequence[str]] = ...,
               status: Optional[str] = ...,
               sort: Literal["newest", "oldest", "relevance"] = ...) -> ClipsPage:
    """dd_clips_page: one page of a user's live clips, shaped like Convex's
    paginate() result.  Pass continueCursor back as cursor, with the same
    query, for the next page."""
    return _call(conn, "SELECT dd_clips_page({args})", [
        ("user_id", user_id, "text"), ("page_size", page_size, "integer"),
        ("cursor", cursor, "text"), ("search", search, "text"),
        ("tags", tags if tags is None or tags is ... else list(tags), "text[]"),
        ("status", status, "text"), ("sort", sort, "text")])[0]


def _clip_changes_args(user_id: str, since: int, max: int) -> list[tuple[str, Any, str]]:
    return [("user_id", user_id, "text"), ("since", since, "bigint"), ("max", max, "integer")]


def clip_changes(conn: Conn, user_id: str, since: int = ..., max: int = ...) -> ClipChanges:
    """dd_clip_changes: the changes after version since, oldest first, and the
    version to poll with next."""
    return _call(conn, "SELECT dd_clip_changes({args})", _clip_changes_args(user_id, since, max))[0]


async def aclip_changes(conn: AsyncConnection[Any], user_id: str, since: int = ...,
                        max: int = ...) -> ClipChanges:
    """clip_changes on an asyncio connection."""
    args = _clip_changes_args(user_id, since, max)
    query = sql.SQL("SELECT dd_clip_changes({args})").format(args=_args(*args))
    cur = await conn.execute(query, _values(*args))
    return (await cur.fetchone())[0]


# Events -------------------------------------------------------------------

def track_event(conn: Conn, user_id: str, event: str, properties: Optional[dict[str, Any]] = ...,
                event_id: Optional[str] = ..., occurred_at: Optional[dt.datetime] = ...) -> Optional[int]:
    """dd_track_event: the event's id, or None when the user already has
    this event_id (a retry: nothing written)."""
    return _call(conn, "SELECT dd_track_event({args})", [
        ("user_id", user_id, "text"), ("event", event, "text"),
        ("properties", _json(properties), "jsonb"), ("event_id", event_id, "text"),
        ("occurred_at", occurred_at, "timestamptz")])[0]


def track_events(conn: Conn, events: Iterable[dict[str, Any]]) -> int:
    """dd_track_events: a batch in one call, dicts with the keys user_id,
    event, properties, event_id, occurred_at (text, a datetime, or
    milliseconds since the epoch).  Returns the rows stored (duplicate
    event_ids of a user are dropped)."""
    batch = [{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in e.items()}
             for e in events]
    return _call(conn, "SELECT dd_track_events({args})", [("events", Jsonb(batch), "jsonb")])[0]
