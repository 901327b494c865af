"""What every API call runs: the token lookup and the quota unit, as hand-written SQL.

The ORM would compile these queries again on every call, which costs several
times what the database takes to answer them. So they are built once per
database from the models' metadata (table and column names, quoted; never
from input) and run with every value as a parameter. On PostgreSQL each
connection prepares them once, so the server does not plan them on every
call either (a connection pooler in transaction mode would lose them: see
docs/OPERATIONS.md), and a counted call is one statement: the token, its
user, the quota override and the unit taken together.

Rows become model instances exactly as the ORM builds them (its converters,
`from_db`), with `token.user` and `user.api_quota` cached.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Model
from django.db.models.expressions import Col

from accounts.models import ApiQuota, ApiToken, ApiUsage


@dataclass(frozen=True)
class _RowPart:
    """The columns of one model in a raw row, with the ORM's converters for each."""

    model: type[Model]
    columns: list[tuple[Col, list[Callable[..., Any]]]]

    def instance(self, values: tuple[Any, ...]) -> Model:
        converted = []
        for value, (col, converters) in zip(values, self.columns, strict=True):
            for convert in converters:
                value = convert(value, col, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, None, converted)


@dataclass(frozen=True)
class _Statements:
    parts: list[_RowPart]  # token, user, quota: the columns of `lookup`, in order
    lookup: str  # params: key_hash
    take_unit: str  # params: user_id, period_start, limit; returns the new count where it can
    lookup_and_take: str | None  # PostgreSQL; params: key_hash, period_start, default limit


# The counter needs atomicity and isolation (the row lock gives the exact
# limit under concurrency), not durability: on PostgreSQL `set_config(...,
# true)` turns synchronous_commit off for the statement's own transaction, so
# a call does not wait for the WAL flush (half its cost). A crash of the
# database server may forget the last fraction of a second of counts.
_RELAXED = "relaxed AS (SELECT set_config('synchronous_commit', 'off', true))"


@functools.cache
def _statements(vendor: str) -> _Statements:
    ops, user_model = connection.ops, get_user_model()

    def name(model: type[Model], field: str | None = None) -> str:
        return ops.quote_name(model._meta.get_field(field).column if field else model._meta.db_table)

    parts, selected, index = [], [], {}
    for model, alias in ((ApiToken, "t"), (user_model, "u"), (ApiQuota, "q")):
        cols = [field.get_col(alias) for field in model._meta.concrete_fields]
        parts.append(
            _RowPart(model, [(c, ops.get_db_converters(c) + c.get_db_converters(connection)) for c in cols])
        )
        for col in cols:
            index[(model, col.target.name)] = f"c{len(selected)}"
            selected.append(f"{alias}.{ops.quote_name(col.target.column)} AS c{len(selected)}")
    lookup = (
        f"SELECT {', '.join(selected)} FROM {name(ApiToken)} t"  # noqa: S608 (names from the models)
        f" INNER JOIN {name(user_model)} u ON u.{name(user_model, user_model._meta.pk.name)} = t.{name(ApiToken, 'user')}"
        f" LEFT OUTER JOIN {name(ApiQuota)} q ON q.{name(ApiQuota, 'user')} = t.{name(ApiToken, 'user')}"
        f" WHERE t.{name(ApiToken, 'key_hash')} = %s"
    )
    usage, used = name(ApiUsage), name(ApiUsage, "used")
    match = f"{name(ApiUsage, 'user')} = %s AND {name(ApiUsage, 'period_start')} = %s AND {used} < %s"
    # The new count comes back with the unit (the quota headers), where the database can say it.
    returning = f" RETURNING {used}" if connection.features.can_return_columns_from_insert else ""
    take_unit = f"UPDATE {usage} SET {used} = {used} + 1 WHERE {match}{returning}"  # noqa: S608
    if vendor != "postgresql":
        return _Statements(parts, lookup, take_unit, None)
    take_unit = (
        f"WITH {_RELAXED} UPDATE {usage} SET {used} = {used} + 1 FROM relaxed WHERE {match} RETURNING {used}"  # noqa: S608
    )
    user_id, is_active = index[(ApiToken, "user")], index[(user_model, "is_active")]
    limit = index[(ApiQuota, "monthly_limit")]
    lookup_and_take = (
        f"WITH {_RELAXED}, found AS ({lookup}),"  # noqa: S608
        f" taken AS (UPDATE {usage} a SET {used} = a.{used} + 1 FROM found, relaxed"
        f" WHERE a.{name(ApiUsage, 'user')} = found.{user_id} AND a.{name(ApiUsage, 'period_start')} = %s"
        f" AND found.{is_active} AND a.{used} < COALESCE(found.{limit}, %s) RETURNING a.{used})"
        f" SELECT found.*, (SELECT {used} FROM taken) FROM found"
    )
    return _Statements(parts, lookup, take_unit, lookup_and_take)


def _execute(cursor: CursorWrapper, sql: str, params: list[Any]) -> None:
    """Run one of this module's statements; on PostgreSQL as a statement prepared on this connection."""
    if connection.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    raw = connection.connection
    prepared = getattr(connection, "_hotpath_prepared", None)
    if prepared is None or prepared[0] is not raw:  # a new connection has none prepared
        prepared = (raw, {})
        connection._hotpath_prepared = prepared  # type: ignore[attr-defined]
    statement = prepared[1].get(sql)
    if statement is None:
        statement = f"mur_hotpath_{len(prepared[1])}"
        numbered = iter(range(1, len(params) + 1))
        cursor.execute(f"PREPARE {statement} AS {re.sub('%s', lambda _: f'${next(numbered)}', sql)}")
        prepared[1][sql] = statement
    cursor.execute(f"EXECUTE {statement}({', '.join(['%s'] * len(params))})", params)


def _token(row: tuple[Any, ...], parts: list[_RowPart]) -> tuple[ApiToken, ApiQuota | None]:
    instances, start = [], 0
    for part in parts:
        instances.append(part.instance(row[start : start + len(part.columns)]))
        start += len(part.columns)
    token, user, quota = instances
    quota = quota if quota.pk is not None else None  # the LEFT JOIN found no override
    ApiToken.user.field.set_cached_value(token, user)
    type(user).api_quota.related.set_cached_value(user, quota)
    return token, quota


def _find(key_hash: str) -> tuple[ApiToken, ApiQuota | None] | None:
    statements = _statements(connection.vendor)
    with connection.cursor() as cursor:
        _execute(cursor, statements.lookup, [key_hash])
        row = cursor.fetchone()
    return _token(row, statements.parts) if row is not None else None


def token_lookup(*, key_hash: str) -> ApiToken | None:
    """The token with this key hash, its user and quota override cached on it, or None."""
    found = _find(key_hash)
    return found[0] if found is not None else None


def usage_take_unit(*, user_id: int, period_start: date, limit: int) -> int | None:
    """used += 1 on the user's row for the month if used < limit: the new count, or None when
    there is no row or it is at the limit."""
    statement = _statements(connection.vendor).take_unit
    with connection.cursor() as cursor:
        _execute(cursor, statement, [user_id, period_start, limit])
        if " RETURNING " in statement:
            row = cursor.fetchone()
            return row[0] if row is not None else None
        if cursor.rowcount != 1:
            return None
    # SQLite before 3.35 has no UPDATE ... RETURNING: one more query (the count is informative).
    usage = ApiUsage.objects.filter(user_id=user_id, period_start=period_start)
    return usage.values_list("used", flat=True).get()


def token_lookup_and_take_unit(
    *, key_hash: str, period_start: date, default_limit: int
) -> tuple[ApiToken | None, int | None]:
    """`token_lookup`, and when the token's user is active, `usage_take_unit` at their limit.

    One statement on PostgreSQL. Returns the token and the month's count after
    the unit was taken; the count is None when the unit is not taken (token
    unknown, user inactive, the month's row missing or the limit reached).
    """
    statements = _statements(connection.vendor)
    if statements.lookup_and_take is None:  # two statements elsewhere
        found = _find(key_hash)
        if found is None:
            return None, None
        token, quota = found
        if not token.user.is_active:
            return token, None
        limit = quota.monthly_limit if quota is not None else default_limit
        return token, usage_take_unit(user_id=token.user_id, period_start=period_start, limit=limit)
    with connection.cursor() as cursor:
        _execute(cursor, statements.lookup_and_take, [key_hash, period_start, default_limit])
        row = cursor.fetchone()
    if row is None:
        return None, None
    return _token(row[:-1], statements.parts)[0], row[-1]
