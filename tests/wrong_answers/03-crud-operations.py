"""Realistic wrong answers for Section 3. Each, put into an otherwise correct notebook, must lose the points
of its exercise and only those (tests/test_grading.py)."""

# The parts of TicketService that most wrong answers share with the solution.
_CREATE_OK = '''
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(title=data.title, description=data.description, user_id=user_id)
        db.add(ticket)
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket
'''
_GET_OK = '''
    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
'''
_LIST_OK = '''
    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .offset(skip)
            .limit(limit)
        )
        return list((await db.scalars(stmt)).all())
'''
_UPDATE_OK = '''
    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        ticket.status = status
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket
'''
_SOFT_DELETE_METHOD = '''
    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
'''


def _service(create=_CREATE_OK, get=_GET_OK, list_=_LIST_OK, update=_UPDATE_OK):
    return "class TicketService:" + create + get + list_ + update + _SOFT_DELETE_METHOD


WRONG_ANSWERS = {
    "TicketService": {
        "create flushes but never commits (the ticket vanishes with the session)": _service(create='''
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(title=data.title, description=data.description, user_id=user_id)
        db.add(ticket)
        await db.flush()
        return ticket
'''),
        "reads forget the soft delete (deleted tickets still visible)": _service(get='''
    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id))
''', list_='''
    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.user_id == user_id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .offset(skip)
            .limit(limit)
        )
        return list((await db.scalars(stmt)).all())
'''),
        "the payload's user_id wins over the authenticated owner": _service(create='''
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(**{"user_id": user_id, **data.model_dump()})
        db.add(ticket)
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket
'''),
        "commit without rollback (a failed create leaves the session unusable)": _service(create='''
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(title=data.title, description=data.description, user_id=user_id)
        db.add(ticket)
        await db.commit()
        return ticket
'''),
        "update_status returns None for a missing ticket instead of raising": _service(update='''
    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if ticket is not None:
            ticket.status = status
            await db.commit()
        return ticket
'''),
        "list_by_user oldest first (quiz order reversed)": _service(list_='''
    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
            .order_by(Ticket.created_at, Ticket.id)
            .offset(skip)
            .limit(limit)
        )
        return list((await db.scalars(stmt)).all())
'''),
    },
    "soft_delete": {
        "hard delete instead of soft delete": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    await db.delete(ticket)
    await db.commit()
''',
        "closes the ticket instead of setting deleted_at": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.status = TicketStatus.closed
    await db.commit()
''',
        "forgets to commit": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.deleted_at = utcnow()
''',
        "bulk UPDATE by ticket_id: no check that it exists or is still live": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    await db.execute(update(Ticket).where(Ticket.ticket_id == ticket_id).values(deleted_at=utcnow()))
    await db.commit()
''',
        "deleting again overwrites deleted_at (loads deleted tickets too)": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.deleted_at = utcnow()
    await db.commit()
''',
    },
    "q8_choice": {
        "soft delete counts as erasure": '# Set q8_choice to "A", "B", "C" or "D".\nq8_choice = "A"\n',
        "cases swapped": '# Set q8_choice to "A", "B", "C" or "D".\nq8_choice = "C"\n',
    },
    "purge_user": {
        "keeps the soft-deleted tickets (copied the live-only filter)": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    result = await db.execute(delete(Ticket).where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None)))
    await db.delete(user)
    await db.commit()
    return result.rowcount
''',
        "DELETE without WHERE: everyone's tickets go": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    result = await db.execute(delete(Ticket))
    await db.delete(user)
    await db.commit()
    return result.rowcount
''',
        "deletes the user only (the foreign key refuses)": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    await db.delete(user)
    await db.commit()
    return 0
''',
        "soft-deletes the tickets instead of erasing them": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    result = await db.execute(
        update(Ticket).where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None)).values(deleted_at=utcnow()))
    await db.commit()
    return result.rowcount
''',
    },
    "get_ticket": {
        "404 and response_model, but no ownership check (BOLA)": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
        "the quiz's fix as is: serves soft-deleted tickets": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    result = await db.execute(select(Ticket).where(Ticket.ticket_id == ticket_id))
    ticket = result.scalars().first()
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    if ticket.user_id != current_user.id:
        raise HTTPException(status_code=403, detail="Not authorized")
    return ticket
''',
        "no response_model: the raw ORM object goes out": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}")
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None or ticket.user_id != current_user.id:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
        "no authentication: ownership never checked, anyone can read": '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep):
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
    },
    "list_tickets": {
        "no tie-breaker: ORDER BY created_at only": '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    db: SessionDep,
    current_user: CurrentUser,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
        .order_by(Ticket.created_at.desc())
        .offset(skip)
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()
''',
        "forgets the soft-delete filter": '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    db: SessionDep,
    current_user: CurrentUser,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()
''',
        "no bounds on skip and limit (plain ints)": '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(db: SessionDep, current_user: CurrentUser, skip: int = 0, limit: int = 20):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .offset(skip)
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()
''',
        "oldest first": '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    db: SessionDep,
    current_user: CurrentUser,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
        .order_by(Ticket.created_at, Ticket.id)
        .offset(skip)
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()
''',
    },
    "list_tickets_keyset": {
        "the cursor compares created_at only (tickets sharing a timestamp are skipped)": '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            last_created_at, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
        stmt = stmt.where(Ticket.created_at < last_created_at)
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)
    tickets = list((await db.scalars(stmt)).all())
    items = tickets[:limit]
    next_cursor = encode_cursor(items[-1]) if len(tickets) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)
''',
        "<= instead of <: each page repeats the last ticket of the previous one": '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            last_created_at, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) <= tuple_(last_created_at, last_id))
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)
    tickets = list((await db.scalars(stmt)).all())
    items = tickets[:limit]
    next_cursor = encode_cursor(items[-1]) if len(tickets) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)
''',
        "a bad cursor is not caught (500 instead of 422)": '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        last_created_at, last_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(last_created_at, last_id))
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)
    tickets = list((await db.scalars(stmt)).all())
    items = tickets[:limit]
    next_cursor = encode_cursor(items[-1]) if len(tickets) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)
''',
        "next_cursor whenever the page is full (an empty last page, never None on time)": '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            last_created_at, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(last_created_at, last_id))
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    items = list((await db.scalars(stmt)).all())
    next_cursor = encode_cursor(items[-1]) if len(items) == limit else None
    return TicketPage(items=items, next_cursor=next_cursor)
''',
    },
}


# More wrong answers, each one that the tests before issue 12 let through (or another way of dodging the lesson).
_KEYSET_HEAD = '''
remove_route("/v2/tickets")


@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(
    db: SessionDep,
    current_user: CurrentUser,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            last_created_at, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
'''
_KEYSET_TAIL = '''    tickets = list((await db.scalars(stmt.limit(limit + 1))).all())
    items = tickets[:limit]
    next_cursor = encode_cursor(items[-1]) if len(tickets) > limit else None
    return TicketPage(items=items, next_cursor=next_cursor)
'''
_LIST_HEAD = '''
remove_route("/tickets")


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(
    db: SessionDep,
    current_user: CurrentUser,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
):
    stmt = (
        select(Ticket)
        .where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
'''
_LIST_TAIL = '''        .offset(skip)
        .limit(limit)
    )
    return (await db.scalars(stmt)).all()
'''
_GET_TICKET_HEAD = '''
remove_route("/tickets/{ticket_id}")


@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
'''

_MORE_WRONG_ANSWERS = {
    "TicketService": {
        "list_by_user newest first by id alone (ids follow insertion, not creation time)": _service(list_='''
    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
            .order_by(Ticket.id.desc())
            .offset(skip)
            .limit(limit)
        )
        return list((await db.scalars(stmt)).all())
'''),
        "list_by_user without the id tie-breaker (ties come back in any order)": _service(list_='''
    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (
            select(Ticket)
            .where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
            .order_by(Ticket.created_at.desc())
            .offset(skip)
            .limit(limit)
        )
        return list((await db.scalars(stmt)).all())
'''),
        "update_status commits without rolling back (a refused change leaves the session broken)": _service(update='''
    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        ticket.status = status
        await db.commit()
        return ticket
'''),
    },
    "soft_delete": {
        "commits without rolling back on failure": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.deleted_at = utcnow()
    await db.commit()
''',
        "rolls back but swallows the error (a refused delete looks like success)": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.deleted_at = utcnow()
    try:
        await db.commit()
    except Exception:
        await db.rollback()
''',
    },
    "q8_choice": {
        "hard delete everywhere": '# Set q8_choice to "A", "B", "C" or "D".\nq8_choice = "D"\n',
        "hedges between two plans": '# Set q8_choice to "A", "B", "C" or "D".\nq8_choice = "B or D"\n',
    },
    "purge_user": {
        "commits the tickets' deletion, then the user's: two transactions": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    result = await db.execute(delete(Ticket).where(Ticket.user_id == user_id))
    await db.commit()
    await db.delete(user)
    await db.commit()
    return result.rowcount
''',
        "no rollback when the commit fails": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    result = await db.execute(delete(Ticket).where(Ticket.user_id == user_id))
    await db.delete(user)
    await db.commit()
    return result.rowcount
''',
    },
    "get_ticket": {
        "403 whose message names the owner": _GET_TICKET_HEAD + '''    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    if ticket.user_id != current_user.id:
        owner = await db.get(User, ticket.user_id)
        raise HTTPException(status_code=403, detail=f"This ticket belongs to {owner.email}")
    return ticket
''',
        "410 Gone for a soft-deleted ticket": _GET_TICKET_HEAD + '''    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id))
    if ticket is None or ticket.user_id != current_user.id:
        raise HTTPException(status_code=404, detail="Ticket not found")
    if ticket.deleted_at is not None:
        raise HTTPException(status_code=410, detail="Ticket deleted")
    return ticket
''',
    },
    "list_tickets": {
        "newest first by id alone": _LIST_HEAD + '''        .order_by(Ticket.id.desc())
''' + _LIST_TAIL,
        "ties broken by the public ticket_id instead of id": _LIST_HEAD + '''        .order_by(Ticket.created_at.desc(), Ticket.ticket_id.desc())
''' + _LIST_TAIL,
    },
    "list_tickets_keyset": {
        "keyset on the id alone": _KEYSET_HEAD + '''        stmt = stmt.where(Ticket.id < last_id)
    stmt = stmt.order_by(Ticket.id.desc())
''' + _KEYSET_TAIL,
        "each column compared on its own (created_at <= and id <), not as one pair": _KEYSET_HEAD + '''        stmt = stmt.where(Ticket.created_at <= last_created_at, Ticket.id < last_id)
    stmt = stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc())
''' + _KEYSET_TAIL,
    },
}
for _exercise, _mistakes in _MORE_WRONG_ANSWERS.items():
    WRONG_ANSWERS[_exercise].update(_mistakes)


# Issue 20: wrong answers that the tests before issue 20 let through; each states what it misses of the instructions.
_TICKET_SERVICE_REST = '''
    async def get_by_id(self, db: AsyncSession, ticket_id: str) -> Ticket | None:
        return await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))

    async def update_status(self, db: AsyncSession, ticket_id: str, status: TicketStatus) -> Ticket:
        ticket = await self.get_by_id(db, ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        ticket.status = status
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def soft_delete(self, db: AsyncSession, ticket_id: str) -> None:
        await soft_delete(db, ticket_id)
'''
_ISSUE_20_WRONG_ANSWERS = {
    "TicketService": {
        "list_by_user pages first, then drops the deleted tickets in Python (short pages)": '''
class TicketService:
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        ticket = Ticket(title=data.title, description=data.description, user_id=user_id)
        db.add(ticket)
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return ticket

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (select(Ticket).where(Ticket.user_id == user_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc()).offset(skip).limit(limit))
        return [ticket for ticket in await db.scalars(stmt) if ticket.deleted_at is None]
''' + _TICKET_SERVICE_REST,
        "create reads the new ticket back by its title (and may find a deleted one)": '''
class TicketService:
    async def create(self, db: AsyncSession, data: TicketCreate, user_id: int) -> Ticket:
        db.add(Ticket(title=data.title, description=data.description, user_id=user_id))
        try:
            await db.commit()
        except Exception:
            await db.rollback()
            raise
        return await db.scalar(select(Ticket).where(Ticket.user_id == user_id, Ticket.title == data.title))

    async def list_by_user(self, db: AsyncSession, user_id: int, skip: int, limit: int) -> list[Ticket]:
        stmt = (select(Ticket).where(Ticket.user_id == user_id, Ticket.deleted_at.is_(None))
                .order_by(Ticket.created_at.desc(), Ticket.id.desc()).offset(skip).limit(limit))
        return list(await db.scalars(stmt))
''' + _TICKET_SERVICE_REST,
    },
    "soft_delete": {
        "works in a session of its own, not in the one it is given": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    async with SessionLocal() as own:
        ticket = await own.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
        if ticket is None:
            raise TicketNotFound(ticket_id)
        ticket.deleted_at = utcnow()
        try:
            await own.commit()
        except Exception:
            await own.rollback()
            raise
''',
        "rolls back first 'to start clean' (throws away the caller's pending work)": '''
async def soft_delete(db: AsyncSession, ticket_id: str) -> None:
    await db.rollback()
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise TicketNotFound(ticket_id)
    ticket.deleted_at = utcnow()
    try:
        await db.commit()
    except Exception:
        await db.rollback()
        raise
''',
    },
    "q8_choice": {  # a choice's hidden test compares the value: every wrong choice was caught before too
        "left unanswered (None) instead of a letter": "q8_choice = None\n",
        "both letters that mention a hard delete": 'q8_choice = "B, D"\n',
    },
    "purge_user": {
        "purges in a session of its own, not in the one it is given": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    async with SessionLocal() as own:
        user = await own.get(User, user_id)
        if user is None:
            raise LookupError(user_id)
        try:
            result = await own.execute(delete(Ticket).where(Ticket.user_id == user_id))
            await own.delete(user)
            await own.commit()
        except Exception:
            await own.rollback()
            raise
    return result.rowcount
''',
        "rolls back first 'to start clean' (throws away the caller's pending work)": '''
async def purge_user(db: AsyncSession, user_id: int) -> int:
    await db.rollback()
    user = await db.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    try:
        result = await db.execute(delete(Ticket).where(Ticket.user_id == user_id))
        await db.delete(user)
        await db.commit()
    except Exception:
        await db.rollback()
        raise
    return result.rowcount
''',
    },
    "get_ticket": {
        "a prefix of the ticket_id is enough ('short ids')": '''
@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    ticket = await db.scalar(select(Ticket).where(Ticket.ticket_id.startswith(ticket_id), Ticket.deleted_at.is_(None),
                                                  Ticket.user_id == current_user.id))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
        "a numeric path is taken as the internal id (guessable URLs)": '''
@app.get("/tickets/{ticket_id}", response_model=TicketResponse)
async def get_ticket(ticket_id: str, db: SessionDep, current_user: CurrentUser):
    key = Ticket.id == int(ticket_id) if ticket_id.isdigit() else Ticket.ticket_id == ticket_id
    ticket = await db.scalar(select(Ticket).where(key, Ticket.deleted_at.is_(None)))
    if ticket is None or ticket.user_id != current_user.id:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
    },
    "list_tickets": {
        "pages first, then drops the deleted tickets in Python (short pages)": '''
@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(db: SessionDep, current_user: CurrentUser, skip: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20):
    stmt = (select(Ticket).where(Ticket.user_id == current_user.id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc()).offset(skip).limit(limit))
    return [ticket for ticket in await db.scalars(stmt) if ticket.deleted_at is None]
''',
        "the deleted filter on an outer query around the paged one": '''
from sqlalchemy.orm import aliased


@app.get("/tickets", response_model=list[TicketResponse])
async def list_tickets(db: SessionDep, current_user: CurrentUser, skip: Annotated[int, Query(ge=0)] = 0,
                       limit: Annotated[int, Query(ge=1, le=100)] = 20):
    paged = (select(Ticket).where(Ticket.user_id == current_user.id)
             .order_by(Ticket.created_at.desc(), Ticket.id.desc()).offset(skip).limit(limit).subquery())
    page = aliased(Ticket, paged)
    stmt = select(page).where(page.deleted_at.is_(None)).order_by(page.created_at.desc(), page.id.desc())
    return list(await db.scalars(stmt))
''',
    },
    "list_tickets_keyset": {
        "the cursor's ticket loaded again as a live ticket (fails once it is deleted)": '''
@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(db: SessionDep, current_user: CurrentUser, cursor: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=100)] = 20):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            _, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
        last = await db.scalar(select(Ticket).where(Ticket.id == last_id, Ticket.deleted_at.is_(None)))
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(last.created_at, last.id))
    tickets = list(await db.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)))
    items = tickets[:limit]
    return TicketPage(items=items, next_cursor=encode_cursor(items[-1]) if len(tickets) > limit else None)
''',
        "the cursor's ticket loaded again by its id (fails once it is erased)": '''
@app.get("/v2/tickets", response_model=TicketPage)
async def list_tickets_keyset(db: SessionDep, current_user: CurrentUser, cursor: str | None = None,
                              limit: Annotated[int, Query(ge=1, le=100)] = 20):
    stmt = select(Ticket).where(Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
    if cursor is not None:
        try:
            _, last_id = decode_cursor(cursor)
        except ValueError:
            raise HTTPException(status_code=422, detail="Invalid cursor")
        last = await db.get(Ticket, last_id)
        stmt = stmt.where(tuple_(Ticket.created_at, Ticket.id) < tuple_(last.created_at, last.id))
    tickets = list(await db.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)))
    items = tickets[:limit]
    return TicketPage(items=items, next_cursor=encode_cursor(items[-1]) if len(tickets) > limit else None)
''',
    },
}
for _exercise, _mistakes in _ISSUE_20_WRONG_ANSWERS.items():
    WRONG_ANSWERS[_exercise].update(_mistakes)
