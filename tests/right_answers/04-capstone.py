"""Correct answers to the capstone written differently from the solution. Each earns its exercise's full marks
(tests/test_grading.py); the suites for `my_tests` kill every mutant, hidden ones included (tests/test_capstone.py)."""

_CREATE = '''
forget_route(router, "POST", "/tickets")


@router.post("", response_model=TicketResponse, status_code=status.HTTP_201_CREATED)
async def create_ticket(data: TicketCreate, service: TicketServiceDep, current_user: CurrentUser):
'''
_UPDATE = '''
forget_route(router, "PATCH", "/tickets/{ticket_id}")


@router.patch("/{ticket_id}", response_model=TicketResponse)
async def update_ticket(ticket_id: str, changes: TicketUpdate, service: TicketServiceDep, current_user: CurrentUser):
'''
_DELETE = '''
forget_route(router, "DELETE", "/tickets/{ticket_id}")


@router.delete("/{ticket_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_ticket(ticket_id: str, service: TicketServiceDep, current_user: CurrentUser) -> None:
'''
_READ = '''
forget_route(router, "GET", "/tickets/{ticket_id}")


@router.get("/{ticket_id}", response_model=TicketDetail)
async def read_ticket(ticket_id: str, service: TicketServiceDep, current_user: CurrentUser):
'''

# The solution's suite without its tests: the fixtures every right suite below starts from, written another way.
_FIXTURES = '''
pytestmark = [pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
async def engine():
    engine = await create_test_engine()
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def session(engine):
    connection = await engine.connect()
    outer = await connection.begin()
    session = AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
    yield session
    await session.close()
    await outer.rollback()
    await connection.close()


@pytest.fixture
async def api(session):
    async def test_db():
        yield session

    app.dependency_overrides[get_db] = test_db
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    del app.dependency_overrides[get_db]


@pytest.fixture
async def users(session):
    """Two users' (id, headers): read once, so that a rollback in the app cannot expire them under us."""
    made = [User(email=f"{name}@example.org", hashed_password="x") for name in ("ann", "eve")]
    session.add_all(made)
    await session.commit()
    return [(user.id, auth(user)) for user in made]
'''

RIGHT_ANSWERS = {
    "create_ticket": {
        "the ticket from the payload's fields, model_dump plus the owner": _CREATE + '''
    ticket = Ticket(**data.model_dump(), user_id=current_user.id)
    service.db.add(ticket)
    try:
        await service.commit()
    except DuplicateTitle as error:
        raise HTTPException(status.HTTP_409_CONFLICT, "duplicate title") from error
    return ticket
''',
        "its own commit and rollback, with the IntegrityError caught directly": _CREATE + '''
    ticket = Ticket(user_id=current_user.id, title=data.title, description=data.description)
    db = service.db
    db.add(ticket)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise HTTPException(status_code=409, detail="A live ticket already has this title")
    return TicketResponse.model_validate(ticket)
''',
        "status code 201 as a number, the 409 from a conditional": '''
forget_route(router, "POST", "/tickets")


@router.post("", status_code=201)
async def create_ticket(data: TicketCreate, service: TicketServiceDep, current_user: CurrentUser) -> TicketResponse:
    ticket = Ticket(title=data.title, description=data.description, user_id=current_user.id)
    service.db.add(ticket)
    conflict = False
    try:
        await service.commit()
    except DuplicateTitle:
        conflict = True
    if conflict:
        raise HTTPException(409)
    return ticket
''',
    },
    "update_ticket": {
        "exclude_none (null is refused by the schema, so None means not sent)": _UPDATE + '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if not ticket:
        raise HTTPException(404)
    for name, value in changes.model_dump(exclude_none=True).items():
        setattr(ticket, name, value)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(409) from None
    return ticket
''',
        "model_fields_set, the fields the client set": _UPDATE + '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Ticket not found")
    for name in changes.model_fields_set:
        setattr(ticket, name, getattr(changes, name))
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status.HTTP_409_CONFLICT, "duplicate title") from None
    return ticket
''',
        "its own owner-scoped query, built from service.owned": _UPDATE + '''
    stmt = service.owned(current_user.id).where(Ticket.ticket_id == ticket_id)
    ticket = (await service.db.scalars(stmt)).one_or_none()
    if ticket is None:
        raise HTTPException(404, "Ticket not found")
    sent = changes.model_dump(exclude_unset=True)
    if "title" in sent:
        ticket.title = sent["title"]
    if "description" in sent:
        ticket.description = sent["description"]
    if "status" in sent:
        ticket.status = sent["status"]
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(409, "duplicate title") from None
    return ticket
''',
    },
    "delete_ticket": {
        "an explicit Response(status_code=204)": '''
forget_route(router, "DELETE", "/tickets/{ticket_id}")

from fastapi import Response


@router.delete("/{ticket_id}", status_code=204, response_class=Response)
async def delete_ticket(ticket_id: str, service: TicketServiceDep, current_user: CurrentUser):
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(404)
    ticket.deleted_at = utcnow()
    await service.commit()
    return Response(status_code=204)
''',
        "one owner-scoped UPDATE statement, 404 when it matched no row": _DELETE + '''
    from sqlalchemy import update

    result = await service.db.execute(
        update(Ticket)
        .where(Ticket.ticket_id == ticket_id, Ticket.user_id == current_user.id, Ticket.deleted_at.is_(None))
        .values(deleted_at=utcnow())
    )
    if result.rowcount == 0:
        raise HTTPException(404, "Ticket not found")
    await service.commit()
''',
        "its own query from service.owned, the time taken once": _DELETE + '''
    now = utcnow()
    ticket = await service.db.scalar(service.owned(current_user.id).where(Ticket.ticket_id == ticket_id))
    if ticket is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="No such ticket")
    ticket.deleted_at = now
    await service.commit()
    return None
''',
    },
    "read_ticket": {
        "joinedload (one query with a JOIN; unique() for a collection)": _READ + '''
    from sqlalchemy.orm import joinedload

    result = await service.db.execute(
        service.owned(current_user.id).where(Ticket.ticket_id == ticket_id).options(joinedload(Ticket.comments)))
    ticket = result.unique().scalar_one_or_none()
    if ticket is None:
        raise HTTPException(404)
    return ticket
''',
        "get_owned, then refresh(ticket, ['comments']) loads the collection explicitly": _READ + '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(404, "Ticket not found")
    await service.db.refresh(ticket, ["comments"])
    return ticket
''',
        "selectinload with the filters written out, a TicketDetail built explicitly": _READ + '''
    stmt = (
        select(Ticket)
        .options(selectinload(Ticket.comments))
        .where(Ticket.ticket_id == ticket_id)
        .where(Ticket.user_id == current_user.id)
        .where(Ticket.deleted_at.is_(None))
    )
    ticket = (await service.db.scalars(stmt)).first()
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return TicketDetail.model_validate(ticket)
''',
    },
    "my_tests": {
        "module-scoped engine, users as (id, headers), one request per assert": _FIXTURES + '''

async def test_post_is_201_and_owned_by_the_caller(api, users):
    (ann, ann_h), (eve, eve_h) = users
    response = await api.post("/tickets", json={"title": "Wifi", "user_id": eve}, headers=ann_h)
    assert response.status_code == 201
    assert [t["title"] for t in (await api.get("/tickets", headers=ann_h)).json()] == ["Wifi"]
    assert (await api.get("/tickets", headers=eve_h)).json() == []


async def test_conflict_then_recovery(api, users):
    (_, ann_h), _ = users
    assert (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).status_code == 201
    assert (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).status_code == 409
    assert (await api.post("/tickets", json={"title": "Lan"}, headers=ann_h)).status_code == 201


async def test_deleted_title_can_be_reused(api, users):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await api.delete(f"/tickets/{ticket_id}", headers=ann_h)).status_code == 204
    assert (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).status_code == 201


async def test_partial_update(api, users):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi", "description": "slow"}, headers=ann_h)).json()["ticket_id"]
    response = await api.patch(f"/tickets/{ticket_id}", json={"description": "very slow"}, headers=ann_h)
    assert response.status_code == 200
    assert response.json()["title"] == "Wifi" and response.json()["description"] == "very slow"


async def test_foreign_tickets_are_not_found_for_every_verb(api, users):
    (_, ann_h), (_, eve_h) = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await api.get(f"/tickets/{ticket_id}", headers=eve_h)).status_code == 404
    assert (await api.patch(f"/tickets/{ticket_id}", json={"title": "x"}, headers=eve_h)).status_code == 404
    assert (await api.delete(f"/tickets/{ticket_id}", headers=eve_h)).status_code == 404
    ticket = (await api.get(f"/tickets/{ticket_id}", headers=ann_h)).json()
    assert ticket["title"] == "Wifi"


async def test_soft_delete(api, users, session):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await api.delete(f"/tickets/{ticket_id}", headers=ann_h)).status_code == 204
    assert (await api.get(f"/tickets/{ticket_id}", headers=ann_h)).status_code == 404
    assert (await api.get("/tickets", headers=ann_h)).json() == []
    deleted_at = await session.scalar(select(Ticket.deleted_at).where(Ticket.ticket_id == ticket_id))
    assert deleted_at is not None


async def test_comments_are_in_the_detail(api, users, session):
    (ann, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    row_id = await session.scalar(select(Ticket.id).where(Ticket.ticket_id == ticket_id))
    session.add(Comment(ticket_id=row_id, author_id=ann, body="rebooted"))
    await session.commit()
    session.expunge_all()
    assert [c["body"] for c in (await api.get(f"/tickets/{ticket_id}", headers=ann_h)).json()["comments"]] == ["rebooted"]


async def test_limit_above_100_is_refused(api, users):
    (_, ann_h), _ = users
    assert (await api.get("/tickets?limit=500", headers=ann_h)).status_code == 422
''',
        "a test class per endpoint, sharing a seeded ticket fixture": _FIXTURES + '''

@pytest.fixture
async def seeded(api, users):
    (_, ann_h), _ = users
    response = await api.post("/tickets", json={"title": "Printer", "description": "jammed"}, headers=ann_h)
    assert response.status_code == 201, response.text
    return response.json()["ticket_id"]


class TestCreate:
    async def test_owner_is_the_caller(self, api, users):
        (ann, ann_h), (eve, eve_h) = users
        await api.post("/tickets", json={"title": "Mine", "user_id": eve}, headers=ann_h)
        assert (await api.get("/tickets", headers=eve_h)).json() == []

    async def test_duplicate_is_409_and_the_session_recovers(self, api, users, seeded):
        (_, ann_h), _ = users
        assert (await api.post("/tickets", json={"title": "Printer"}, headers=ann_h)).status_code == 409
        listed = await api.get("/tickets", headers=ann_h)
        assert listed.status_code == 200 and len(listed.json()) == 1

    async def test_title_of_a_deleted_ticket(self, api, users, seeded):
        (_, ann_h), _ = users
        await api.delete(f"/tickets/{seeded}", headers=ann_h)
        assert (await api.post("/tickets", json={"title": "Printer"}, headers=ann_h)).status_code == 201


class TestUpdate:
    async def test_only_sent_fields(self, api, users, seeded):
        (_, ann_h), _ = users
        body = (await api.patch(f"/tickets/{seeded}", json={"status": "in_progress"}, headers=ann_h)).json()
        assert body["description"] == "jammed" and body["status"] == "in_progress"

    async def test_not_yours(self, api, users, seeded):
        _, (_, eve_h) = users
        assert (await api.patch(f"/tickets/{seeded}", json={"status": "closed"}, headers=eve_h)).status_code == 404


class TestDelete:
    async def test_not_yours(self, api, users, seeded):
        (_, ann_h), (_, eve_h) = users
        assert (await api.delete(f"/tickets/{seeded}", headers=eve_h)).status_code == 404
        assert (await api.get(f"/tickets/{seeded}", headers=ann_h)).status_code == 200

    async def test_soft(self, api, users, seeded, session):
        (_, ann_h), _ = users
        assert (await api.delete(f"/tickets/{seeded}", headers=ann_h)).status_code == 204
        ticket = await session.scalar(select(Ticket).where(Ticket.ticket_id == seeded))
        assert ticket is not None and ticket.deleted_at is not None
        assert (await api.get(f"/tickets/{seeded}", headers=ann_h)).status_code == 404
        assert seeded not in [t["ticket_id"] for t in (await api.get("/tickets", headers=ann_h)).json()]


class TestRead:
    async def test_not_yours_is_404(self, api, users, seeded):
        _, (_, eve_h) = users
        assert (await api.get(f"/tickets/{seeded}", headers=eve_h)).status_code == 404

    async def test_with_comments(self, api, users, seeded, session):
        (ann, ann_h), _ = users
        ticket = await session.scalar(select(Ticket).where(Ticket.ticket_id == seeded))
        session.add_all([Comment(ticket_id=ticket.id, author_id=ann, body=b) for b in ("a", "b")])
        await session.commit()
        session.expunge_all()
        body = (await api.get(f"/tickets/{seeded}", headers=ann_h)).json()
        assert [c["body"] for c in body["comments"]] == ["a", "b"]

    async def test_limit_cap(self, api, users):
        (_, ann_h), _ = users
        assert (await api.get("/tickets", params={"limit": 1000}, headers=ann_h)).status_code == 422
''',
        "parametrized over the verbs, rows seeded through the ORM": _FIXTURES + '''

async def seed(session, owner_id, title, *, comments=(), deleted=False):
    ticket = Ticket(title=title, user_id=owner_id, deleted_at=utcnow() if deleted else None)
    session.add(ticket)
    await session.flush()
    session.add_all(Comment(ticket_id=ticket.id, author_id=owner_id, body=b) for b in comments)
    await session.commit()
    ticket_id = ticket.ticket_id
    session.expunge_all()
    return ticket_id


@pytest.mark.parametrize("method, body", [("GET", None), ("PATCH", {"title": "Mine now"}), ("DELETE", None)])
async def test_someone_elses_ticket_is_404(api, users, session, method, body):
    (ann, ann_h), (_, eve_h) = users
    ticket_id = await seed(session, ann, "Payroll")
    response = await api.request(method, f"/tickets/{ticket_id}", json=body, headers=eve_h)
    assert response.status_code == 404
    stored = await session.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id))
    assert (stored.title, stored.deleted_at) == ("Payroll", None)


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_a_deleted_ticket_is_404(api, users, session, method):
    (ann, ann_h), _ = users
    ticket_id = await seed(session, ann, "Old", deleted=True)
    response = await api.request(method, f"/tickets/{ticket_id}", json={"title": "x"} if method == "PATCH" else None,
                                 headers=ann_h)
    assert response.status_code == 404


async def test_list_hides_deleted_and_caps_limit(api, users, session):
    (ann, ann_h), _ = users
    await seed(session, ann, "Old", deleted=True)
    await seed(session, ann, "New")
    assert [t["title"] for t in (await api.get("/tickets", headers=ann_h)).json()] == ["New"]
    assert (await api.get("/tickets", params={"limit": 101}, headers=ann_h)).status_code == 422


async def test_create(api, users, session):
    (ann, ann_h), (eve, _) = users
    await seed(session, ann, "Reused", deleted=True)
    response = await api.post("/tickets", json={"title": "Reused", "user_id": eve}, headers=ann_h)
    assert response.status_code == 201
    owner = await session.scalar(select(Ticket.user_id).where(Ticket.ticket_id == response.json()["ticket_id"]))
    assert owner == ann


async def test_duplicate(api, users, session):
    (ann, ann_h), _ = users
    await seed(session, ann, "Twice")
    assert (await api.post("/tickets", json={"title": "Twice"}, headers=ann_h)).status_code == 409
    assert (await api.post("/tickets", json={"title": "Once"}, headers=ann_h)).status_code == 201


async def test_patch_keeps_what_was_not_sent(api, users, session):
    (ann, ann_h), _ = users
    ticket_id = await seed(session, ann, "Keep")
    response = await api.patch(f"/tickets/{ticket_id}", json={"status": "closed"}, headers=ann_h)
    assert response.status_code == 200 and response.json()["title"] == "Keep"


async def test_delete_keeps_the_row(api, users, session):
    (ann, ann_h), _ = users
    ticket_id = await seed(session, ann, "Gone soon", comments=("bye",))
    assert (await api.delete(f"/tickets/{ticket_id}", headers=ann_h)).status_code == 204
    assert await session.scalar(select(Ticket.deleted_at).where(Ticket.ticket_id == ticket_id)) is not None


async def test_detail_has_comments(api, users, session):
    (ann, ann_h), _ = users
    ticket_id = await seed(session, ann, "Chatty", comments=("one", "two", "three"))
    response = await api.get(f"/tickets/{ticket_id}", headers=ann_h)
    assert [c["body"] for c in response.json()["comments"]] == ["one", "two", "three"]
''',
    },
}
