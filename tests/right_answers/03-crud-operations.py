"""Correct answers for Section 3, written differently from the solution. Each must earn its exercise's full
marks (tests/test_grading.py). Answer k of every exercise goes into one submission, "right-k": exercises are
graded independently, so one notebook checks one answer per exercise."""

RIGHT_ANSWERS = {
    "TicketService": {
        "execute() and result objects, refresh after commit, UPDATE ... RETURNING": '''
class TicketService:
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(**data.model_dump(include={"title", "description"}), user_id=user_id)
        db.add(ticket)
        try:
            await db.commit()
            await db.refresh(ticket)
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        result = await db.execute(
            select(Ticket).where(Ticket.ticket_id == ticket_id).where(Ticket.deleted_at.is_(None)))
        return result.scalar_one_or_none()

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        from sqlalchemy import desc

        result = await db.execute(
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
            .order_by(desc(Ticket.created_at), desc(Ticket.id))
            .limit(limit)
            .offset(skip)
        )
        return list(result.scalars())

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        stmt = (
            update(Ticket)
            .where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None))
            .values(status=status)
            .returning(Ticket)
        )
        try:
            ticket = await db.scalar(stmt)
            if ticket is None:
                raise TicketNotFound(ticket_id)
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
''',
        "a shared statement for live tickets and a commit helper": '''
class TicketService:
    @staticmethod
    def _live_tickets():
        return select(Ticket).where(Ticket.deleted_at.is_(None))

    @staticmethod
    async def _commit(db: AsyncSession) -> None:
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise

    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(title=data.title, description=data.description)
        ticket.user_id = user_id
        db.add(ticket)
        await self._commit(db)
        return ticket

    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return (await db.scalars(self._live_tickets().where(Ticket.ticket_id == ticket_id))).one_or_none()

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (self._live_tickets().where(Ticket.user_id == user_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .slice(skip, skip + limit))
        return [ticket for ticket in await db.scalars(stmt)]

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if not ticket:
            raise TicketNotFound(f"no live ticket {ticket_id}")
        ticket.status = TicketStatus(status)
        await self._commit(db)
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
''',
        "and_(), streamed results, a row lock when updating": '''
from sqlalchemy import and_


class TicketService:
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        db.add_all([ticket := Ticket(user_id=user_id, title=data.title, description=data.description)])
        try:
            await db.flush()  # the database checks the unique index here
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return await db.scalar(select(Ticket).where(and_(Ticket.ticket_id == ticket_id, Ticket.deleted_at == None)))  # noqa: E711

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (select(Ticket)
                .filter_by(user_id=user_id, deleted_at=None)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .offset(skip).limit(limit))
        return [ticket async for ticket in await db.stream_scalars(stmt)]

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        stmt = select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)).with_for_update()
        ticket = await db.scalar(stmt)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        try:
            ticket.status = status
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
''',
    },
    "soft_delete": {
        "one UPDATE of live rows, rowcount says whether there was one": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    stmt = (update(Ticket)
            .where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None))
            .values(deleted_at=utcnow()))
    try:
        result = await db.execute(stmt)
        if result.rowcount == 0:
            raise TicketNotFound(ticket_id)
        await db.commit()
    except Exception:
        await db.rollback()
        raise
''',
        "execute().scalar_one_or_none(), flush then commit": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    result = await db.execute(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    ticket = result.scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound(f"no live ticket {ticket_id!r}")
    try:
        ticket.deleted_at = utcnow()
        await db.flush()
        await db.commit()
    except Exception:
        await db.rollback()
        raise
''',
        "the quiz's style: .scalars().first(), setattr, a bare except": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    result = await db.execute(select(Ticket).filter(Ticket.ticket_id == ticket_id).filter(Ticket.deleted_at.is_(None)))
    ticket = result.scalars().first()
    if not ticket:
        raise TicketNotFound(ticket_id)
    setattr(ticket, "deleted_at", utcnow())
    try:
        await db.commit()
    except:  # noqa: E722  (re-raised right away)
        await db.rollback()
        raise
''',
    },
    "q8_choice": {
        "through a named variable": '# audit trail -> soft delete; erasure -> hard delete\nplan = "B"\nq8_choice = plan\n',
        "picked from the list of letters": 'q8_choice = ["A", "B", "C", "D"][1]\n',
        "from a dict of the plans": 'plans = {"soft/soft": "A", "soft/hard": "B", "hard/soft": "C", "hard/hard": "D"}\nq8_choice = plans["soft/hard"]\n',
    },
    "purge_user": {
        "the ORM way: load the tickets, delete each, then the user": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    tickets = (await db.scalars(select(Ticket).where(Ticket.user_id == user_id))).all()
    try:
        for ticket in tickets:
            await db.delete(ticket)
        await db.flush()  # the tickets' DELETEs go first, then the user's
        await db.delete(user)
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return len(tickets)
''',
        "two bulk DELETEs, the tickets counted with RETURNING, KeyError for a missing user": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    if await db.get(User, user_id) is None:
        raise KeyError(f"no user with id {user_id}")  # KeyError is a LookupError
    try:
        deleted = await db.execute(delete(Ticket).where(Ticket.user_id == user_id).returning(Ticket.id))
        count = len(deleted.all())
        await db.execute(delete(User).where(User.id == user_id))
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return count
''',
        "count first, then delete, one commit": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if not user:
        raise LookupError(f"user {user_id} not found")
    count = await db.scalar(select(func.count(Ticket.id)).where(Ticket.user_id == user_id))
    try:
        await db.execute(delete(Ticket).where(Ticket.user_id == user.id))
        await db.delete(user)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return count
''',
    },
    "get_ticket": {
        "the quiz's fix, with the soft-delete filter: 403 for someone else's ticket": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(
    ticket_id: str,
    db: AsyncSession = Depends(get_db),
    current_user: User = Depends(get_current_user),
):
    result = await db.execute(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    ticket = result.scalars().first()
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    if ticket.user_id != current_user.id:
        raise HTTPException(status_code=403, detail="Not authorized")
    return ticket
''',
        "the owner in the query, the response model from the return annotation": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}")
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser) -> TicketResponse:
    stmt = select(Ticket).where(
        Ticket.ticket_id == ticket_id,
        Ticket.user_id == current_user.id,
        Ticket.deleted_at.is_(None),
    )
    ticket = await db.scalar(stmt)
    if ticket is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Ticket not found")
    return ticket
''',
        "checks in Python, returns the schema object itself": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    ticket = (await db.execute(select(Ticket).where(Ticket.ticket_id == ticket_id))).scalar_one_or_none()
    visible = ticket is not None and ticket.deleted_at is None and ticket.user_id == current_user.id
    if not visible:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="No such ticket")
    return TicketResponse.model_validate(ticket)
''',
    },
    "list_tickets": {
        "the quiz's endpoint with the soft-delete filter and the tie-breaker": '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    skip: int = Query(default=0, ge=0),
    limit: int = Query(default=20, ge=1, le=100),
    db: AsyncSession = Depends(get_db),
    current_user: User = Depends(get_current_user),
):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id)
        .where(Ticket.deleted_at.is_(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .offset(skip)
        .limit(limit)
    )
    result = await db.execute(stmt)
    return result.scalars().all()
''',
        "bounds written as gt/lt, the response model from the return annotation": '''
remove_route("/tickets")


@app.get("/tickets")
async def list_tickets(
    db: SessionDep,
    current_user: CurrentUser,
    skip: Annotated[int, Query(gt=-1)] = 0,
    limit: Annotated[int, Query(gt=0, lt=101)] = 20,
) -> list[TicketResponse]:
    tickets = await db.scalars(
        select(Ticket)
        .filter_by(user_id=current_user.id, deleted_at=None)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(limit)
        .offset(skip)
    )
    return [TicketResponse.model_validate(ticket) for ticket in tickets]
''',
        "the query parameters as one Pydantic model": '''
remove_route("/tickets")


class PageParams(BaseModel):
    skip: int = Field(default=0, ge=0)
    limit: int = Field(default=20, ge=1, le=100)


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(page: Annotated[PageParams, Query()], db: SessionDep, current_user: CurrentUser):
    newest_first = (Ticket.created_at.desc(), Ticket.id.desc())
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None)).order_by(*newest_first)
    return (await db.scalars(stmt.offset(page.skip).limit(page.limit))).all()
''',
    },
    "list_tickets_keyset": {
        "the row comparison spelled out with or_/and_": '''
from sqlalchemy import and_, or_

remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor:
        try:
            created_at, last_id = decode_cursor(cursor)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        stmt = stmt.where(or_(Ticket.created_at < created_at,
                              and_(Ticket.created_at == created_at, Ticket.id < last_id)))
    rows = (await db.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1))).all()
    has_more = len(rows) > limit
    page = rows[:limit]
    return TicketPage(items=page, next_cursor=encode_cursor(page[-1]) if has_more else None)
''',
        "a second query asks whether anything follows": '''
remove_route("/v2/tickets")


def newest_first_after(user_id: int, position: tuple[datetime, int] | None):
    stmt = select(Ticket).where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
    if position is not None:
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(*position))
    return stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc())


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    try:
        position = decode_cursor(cursor) if cursor is not None else None
    except ValueError:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_ENTITY, detail="Invalid cursor") from None
    items = list(await db.scalars(newest_first_after(current_user.id, position).limit(limit)))
    next_cursor = None
    if items:
        last = items[-1]
        more = await db.scalar(newest_first_after(current_user.id, (last.created_at, last.id)).limit(1))
        next_cursor = encode_cursor(last) if more is not None else None
    return TicketPage(items=items, next_cursor=next_cursor)
''',
        "a plain dict for the page, the extra row popped off": '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    conditions = [Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None)]
    if cursor is not None:
        try:
            position = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(422, "Invalid cursor")
        conditions.append(tuple_(Ticket.created_at, Ticket.id) < position)
    stmt = (select(Ticket).where(*conditions)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1))
    tickets = list((await db.execute(stmt)).scalars())
    has_more = len(tickets) > limit
    if has_more:
        tickets.pop()
    return {"items": tickets, "next_cursor": encode_cursor(tickets[-1]) if has_more else None}
''',
    },
}


# Issue 20: idioms not covered above.
_ISSUE_20_RIGHT_ANSWERS = {
    "TicketService": {
        "a duplicate title refused by a SELECT before the insert (ValueError); the session stays usable": '''
class TicketService:
    def live(self):
        return select(Ticket).where(Ticket.deleted_at.is_(None))

    async def save(self, db: AsyncSession) -> None:
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise

    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        duplicate = await db.scalar(self.live().where(Ticket.user_id == user_id, Ticket.title == data.title))
        if duplicate is not None:
            raise ValueError(f"you already have an open ticket titled {data.title!r}")
        ticket = Ticket(title=data.title, description=data.description, user_id=user_id)
        db.add(ticket)
        await self.save(db)
        return ticket

    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return await db.scalar(self.live().where(Ticket.ticket_id == ticket_id))

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (self.live().where(Ticket.user_id == user_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc()).offset(skip).limit(limit))
        return list(await db.scalars(stmt))

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        ticket.status = status
        await self.save(db)
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
''',
        "filter_by keyword filters, flush before commit": '''
class TicketService:
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(user_id=user_id, **data.model_dump(include={"title", "description"}))
        db.add(ticket)
        try:
            await db.flush()
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        result = await db.execute(select(Ticket).filter_by(ticket_id=ticket_id, deleted_at=None))
        return result.scalars().one_or_none()

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        result = await db.execute(
            select(Ticket).filter_by(user_id=user_id, deleted_at=None)
            .order_by(Ticket.created_at.desc()).order_by(Ticket.id.desc())
            .limit(limit).offset(skip))
        return result.scalars().all()

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        if (ticket := await self.get_by_id(db, ticket_id)) is None:
            raise TicketNotFound(f"no live ticket {ticket_id}")
        ticket.status = status
        try:
            await db.flush()
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
''',
    },
    "soft_delete": {
        "UPDATE ... RETURNING says whether a live row was hit": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    stmt = (update(Ticket)
            .where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None))
            .values(deleted_at=utcnow())
            .returning(Ticket.id))
    try:
        hit = (await db.execute(stmt)).first()
        if hit is None:
            raise TicketNotFound(ticket_id)
        await db.commit()
    except Exception:
        await db.rollback()
        raise
''',
        "filter_by and scalar_one, NoResultFound turned into TicketNotFound": '''
from sqlalchemy.exc import NoResultFound


async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    try:
        ticket = (await db.execute(select(Ticket).filter_by(ticket_id=ticket_id, deleted_at=None))).scalar_one()
    except NoResultFound:
        raise TicketNotFound(ticket_id) from None
    ticket.deleted_at = utcnow()
    try:
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
''',
    },
    "q8_choice": {
        "upper-cased from the lower-case letter": 'q8_choice = "b".upper()\n',
        "the letter after A": 'q8_choice = chr(ord("A") + 1)\n',
    },
    "purge_user": {
        "filter_by deletes for the tickets and the user, a missing user found by the user delete's rowcount": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    try:
        tickets = await db.execute(delete(Ticket).filter_by(user_id=user_id))
        users = await db.execute(delete(User).filter_by(id=user_id))
        if users.rowcount == 0:
            raise LookupError(f"user {user_id} does not exist")
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return tickets.rowcount
''',
        "live and soft-deleted tickets deleted by two statements, their counts added": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if not user:
        raise LookupError(user_id)
    mine = Ticket.user_id == user_id
    try:
        live = await db.execute(delete(Ticket).where(mine, Ticket.deleted_at.is_(None)))
        soft_deleted = await db.execute(delete(Ticket).where(mine, Ticket.deleted_at.is_not(None)))
        await db.delete(user)
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return live.rowcount + soft_deleted.rowcount
''',
    },
    "get_ticket": {
        "a dependency loads the caller's ticket, the endpoint only returns it": '''
async def owned_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser) -> Ticket:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None or ticket.user_id != current_user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Ticket not found")
    return ticket


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket: Annotated[Ticket, Depends(owned_ticket)]):
    return ticket
''',
        "scalars().one_or_none(), 404 when missing, 403 without details when not yours": '''
@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, current_user: CurrentUser, db: SessionDep):
    result = await db.execute(select(Ticket).where(Ticket.deleted_at.is_(None), Ticket.ticket_id == ticket_id))
    ticket = result.scalars().one_or_none()
    if not ticket:
        raise HTTPException(status_code=404, detail="Not found")
    if ticket.user_id != current_user.id:
        raise HTTPException(status_code=403, detail="Forbidden")
    return ticket
''',
    },
    "list_tickets": {
        "the paging parameters as a dataclass dependency": '''
from dataclasses import dataclass


@dataclass
class Paging:
    skip: int = Query(0, ge=0)
    limit: int = Query(20, ge=1, le=100)


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(paging: Annotated[Paging, Depends()], db: SessionDep, current_user: CurrentUser):
    stmt = (select(Ticket)
            .where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .offset(paging.skip).limit(paging.limit))
    return list(await db.scalars(stmt))
''',
        "filter(), desc() and slice()": '''
from sqlalchemy import desc


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    current_user: CurrentUser,
    db: SessionDep,
    skip: int = Query(default=0, ge=0),
    limit: int = Query(default=20, ge=1, le=100),
):
    stmt = (select(Ticket)
            .filter(Ticket.user_id == current_user.id)
            .filter(Ticket.deleted_at == None)  # noqa: E711 (SQLAlchemy turns it into IS NULL)
            .order_by(desc(Ticket.created_at), desc(Ticket.id))
            .slice(skip, skip + limit))
    return (await db.execute(stmt)).scalars().all()
''',
    },
    "list_tickets_keyset": {
        "the row comparison written the other way round (position > row)": '''
@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(db: SessionDep, current_user: CurrentUser, cursor: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=100)] = 20):
    conditions = [Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None)]
    if cursor:
        try:
            position = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(422, "Invalid cursor") from None
        conditions.append(tuple_(*position) > tuple_(Ticket.created_at, Ticket.id))
    found = list(await db.scalars(select(Ticket).where(*conditions)
                                  .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)))
    page, more = found[:limit], len(found) > limit
    return TicketPage(items=page, next_cursor=encode_cursor(page[-1]) if more else None)
''',
        "streamed with stream_scalars, stopping after limit + 1 rows": '''
@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(db: SessionDep, current_user: CurrentUser, cursor: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=100)] = 20):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            created_at, last_id = decode_cursor(cursor)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(created_at, last_id))
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)
    items = []
    async for ticket in await db.stream_scalars(stmt):
        items.append(ticket)
    has_more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(items[-1]) if has_more else None}
''',
    },
}
for _exercise, _variants in _ISSUE_20_RIGHT_ANSWERS.items():
    RIGHT_ANSWERS[_exercise].update(_variants)
