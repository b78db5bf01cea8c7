"""What dbt puts in a model's Jinja context, stubbed for `sqlfluff lint` (jinja templater).

sqlfluff loads this package through `library_path` in .sqlfluff: every public name here becomes
a Jinja global while it renders models, tests and analyses, so linting needs no database and no
`dbt parse`. sqlfluff's own dbt builtins cover ref, source and this; these add the rest the
project's macros use. Each stub answers as dbt does at parse time (`execute` false, every var at
its default, no TimescaleDB license), so the SQL that is linted is the default build's SQL.
"""

from __future__ import annotations

import re as _re
from collections.abc import Callable
from typing import Any

from jinja2 import pass_context as _pass_context
from jinja2.runtime import Context as _Context
from sqlfluff.core.templaters.builtins.dbt import MacroReturn as _MacroReturn

# The same values for every rendered file: a fixed run start keeps the lint output stable.
execute = False
run_started_at = "2000-01-01 00:00:00+00:00"
invocation_id = "00000000-0000-0000-0000-000000000000"
flags = {"FULL_REFRESH": False}


class _Namespace:
    """Attribute access in Jinja (`target.schema`) over plain values."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


target = _Namespace(name="dev", schema="analytics", type="postgres", database="stock_analytics", threads=2)
modules = _Namespace(re=_re)


def var(name: str, default: Any = None) -> Any:
    """Every var at its default, as `dbt build` without --vars."""
    return default


def env_var(name: str, default: str = "") -> str:
    return default


def log(message: str, info: bool = False) -> str:
    return ""


class _Config:
    """`{{ config(...) }}` renders nothing; `config.get(key, default)` gives the default."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return ""

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def require(self, key: str) -> str:
        return key


config = _Config()


class _CompilerError(Exception):
    """A macro refused its arguments: linting stops on that file, as dbt would."""


def _raise_compiler_error(message: str) -> None:
    raise _CompilerError(message)


exceptions = _Namespace(raise_compiler_error=_raise_compiler_error, warn=log)


def _string_literal(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _macro(context: _Context, name: str) -> Callable[..., Any]:
    macro = context.get(name)
    if macro is None or not callable(macro):
        raise _CompilerError(f"no macro named {name!r} in the macro paths (sqlfluff library dbt_context)")
    return macro


@_pass_context
def _dispatch(context: _Context, macro_name: str, macro_namespace: str | None = None) -> Callable[..., Any]:
    """adapter.dispatch: the postgres__ implementation, else default__, as on the project's adapter."""
    for prefix in ("postgres__", "default__"):
        candidate = context.get(prefix + macro_name)
        if candidate is not None and callable(candidate):
            return candidate
    return _macro(context, macro_name)


adapter = _Namespace(dispatch=_dispatch)


class _Relation:
    """What api.Relation.create gives: renders as schema.identifier."""

    def __init__(
        self,
        database: object = None,
        schema: object = None,
        identifier: object = None,
        type: str | None = None,
    ) -> None:
        self.database, self.schema, self.identifier, self.type = database, schema, identifier, type

    def __str__(self) -> str:
        return f"{self.schema}.{self.identifier}"


api = _Namespace(Relation=_Namespace(create=_Relation))
# dbt's own macros the project calls as dbt.<name>.
dbt = _Namespace(string_literal=_string_literal)


class _Project:
    """`stock_analytics.<macro>(...)`, `timescale_incremental.<macro>(...)`: a namespace's macros."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        @_pass_context
        def call(context: _Context, *args: Any, **kwargs: Any) -> Any:
            # `{{ return(x) }}` raises; dbt's macro call gives x, so must this one, or the
            # exception ends the caller's macro instead.
            try:
                return _macro(context, name)(*args, **kwargs)
            except _MacroReturn as returned:
                return returned.value

        return call


stock_analytics = _Project()
# The incremental engine's package (load_macros_from_path loads its macros too).
timescale_incremental = _Project()


def _same(value: Any) -> Any:
    return value


# dbt's Jinja filters (dbt_common.clients.jinja TEXT_FILTERS); sqlfluff adds these by this name.
SQLFLUFF_JINJA_FILTERS = {
    "as_text": _same,
    "as_bool": _same,
    "as_native": _same,
    "as_number": _same,
    "is_list": lambda value: isinstance(value, list),
}
