"""Invitation-style check-ups: the enterprise invites an advisory inspection of its
monitoring setup (whether, when and what is its choice). Scheduling one makes an
advisory task; the visit for it and its findings are marked advisory — not a basis for
enforcement — wherever they appear, and can never be tied to a case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from offsite.api import queries
from offsite.api.auth import ANY_USER, ENTERPRISE, STAFF, Principal, visible_or_404
from offsite.api.deps import Conn
from offsite.api.models.invitations import InvitationCreate, InvitationPublic, InvitationSchedule
from offsite.api.models.tasks import TaskPublic
from offsite.store.notices import notify

router = APIRouter(prefix="/api/invitations", tags=["invitations"])


@router.post(
    "",
    response_model=InvitationPublic,
    status_code=201,
    summary="The enterprise invites an advisory check-up",
)
async def invite(
    body: InvitationCreate, conn: Conn, who: Annotated[Principal, Depends(ENTERPRISE)]
) -> dict:
    assert who.enterprise_id is not None
    async with conn.transaction():
        return await queries.invitations.create_invitation(
            conn, who.enterprise_id, who.user_id, body.scope, body.preferred_at
        )


@router.get("", response_model=list[InvitationPublic], summary="Invitations (your scope)")
async def list_invitations(
    conn: Conn,
    who: Annotated[Principal, Depends(ANY_USER)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return await queries.invitations.list_invitations(conn, who.scope, limit)


@router.post(
    "/{invitation_id}/schedule",
    response_model=TaskPublic,
    status_code=201,
    summary="Accept an invitation: an advisory task for an inspector",
    responses={
        404: {"description": "no such invitation"},
        409: {"description": "already scheduled or done"},
        422: {"description": "the assignee is not an active inspector of the site's region"},
    },
)
async def schedule(
    invitation_id: int,
    body: InvitationSchedule,
    conn: Conn,
    who: Annotated[Principal, Depends(STAFF)],
) -> dict:
    async with conn.transaction():
        inv = await queries.invitations.get_invitation(conn, invitation_id, lock=True)
        visible_or_404(who, inv["enterprise_id"] if inv else None, f"invitation {invitation_id}")
        assert inv is not None
        if inv["state"] != "requested":
            raise HTTPException(409, f"invitation {invitation_id} is {inv['state']}")
        if not await queries.users.inspector_covers(conn, body.assignee, inv["enterprise_id"]):
            raise HTTPException(
                422,
                f"{body.assignee!r} is not an active inspector of the region of "
                f"enterprise {inv['enterprise_id']}",
            )
        task_id = await queries.tasks.create_task(
            conn,
            inv["enterprise_id"],
            None,
            invitation_id,
            f"advisory check-up (invited): {inv['scope']}",
            body.assignee,
            who.user_id,
            body.due_at,
        )
        await queries.invitations.mark_scheduled(conn, invitation_id)
        await notify(
            conn,
            inv["enterprise_id"],
            "enterprise",
            None,
            "invitation.scheduled",
            f"your invitation {invitation_id} is scheduled (advisory task {task_id})",
        )
    task = await queries.tasks.get_task(conn, task_id)
    assert task is not None
    return task
