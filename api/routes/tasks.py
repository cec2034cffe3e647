"""Inspection tasks: visits to be made, for a case or an invitation. They are closed by
the findings of the visit checked in for them (``api/routes/visits.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from offsite.api import queries
from offsite.api.auth import Access, Principal, Role, visible_or_404
from offsite.api.deps import Conn
from offsite.api.models.paging import MAX_OFFSET
from offsite.api.models.tasks import TaskPublic

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
# enterprises are not told of visits in advance through this list
TASK_READERS = Access(Role.ADMIN, Role.REGULATOR, Role.INSPECTOR)


@router.get(
    "",
    response_model=list[TaskPublic],
    summary="Inspection tasks (an inspector sees those assigned to them)",
)
async def list_tasks(
    conn: Conn,
    who: Annotated[Principal, Depends(TASK_READERS)],
    state: Annotated[str | None, Query(pattern="^(open|done)$")] = None,
    assignee: str | None = None,
    alert_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="tasks of the case holding this alert")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> list[dict]:
    if who.role is Role.INSPECTOR:
        assignee = who.user_id
    return await queries.tasks.list_tasks(conn, who.scope, assignee, state, limit, offset, alert_id)


@router.get("/{task_id}", response_model=TaskPublic, responses={404: {"description": "none"}})
async def get_task(
    task_id: int, conn: Conn, who: Annotated[Principal, Depends(TASK_READERS)]
) -> dict:
    task = await queries.tasks.get_task(conn, task_id)
    if task is not None and who.role is Role.INSPECTOR and task["assignee"] != who.user_id:
        task = None
    visible_or_404(who, task["enterprise_id"] if task else None, f"task {task_id}")
    assert task is not None
    return task
