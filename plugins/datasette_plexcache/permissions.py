"""Permission checks that work on Datasette 0.65 and on the 1.0 alphas.

0.65 asks the ``permission_allowed`` hook; 1.0a20+ registers actions and
answers through ``permission_resources_sql``. Each line ignores the hook it
does not know, so ``__init__`` implements both; this module hides which one
is asked.
"""

from __future__ import annotations

from .service import SYNC_ACTION


def is_datasette_1(datasette) -> bool:
    return hasattr(datasette, "allowed")


async def can_sync(datasette, actor) -> bool:
    "May ``actor`` start a sync (the ``plexcache-sync`` action)?"
    if is_datasette_1(datasette):
        return await datasette.allowed(action=SYNC_ACTION, actor=actor)
    return await datasette.permission_allowed(actor, SYNC_ACTION, default=False)


async def can_view(datasette, actor, database: str | None) -> bool:
    "May ``actor`` see the instance and the cache database (so its status)?"
    if is_datasette_1(datasette):
        if not await datasette.allowed(action="view-instance", actor=actor):
            return False
        if database is None:
            return True
        from datasette.resources import DatabaseResource

        return await datasette.allowed(
            action="view-database", actor=actor, resource=DatabaseResource(database)
        )
    if not await datasette.permission_allowed(actor, "view-instance", default=True):
        return False
    if database is None:
        return True
    return await datasette.permission_allowed(
        actor, "view-database", resource=database, default=True
    )
