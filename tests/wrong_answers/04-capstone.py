"""Realistic wrong answers for the capstone. Each, put into an otherwise correct notebook, must lose the points of
its exercise and only those (tests/test_grading.py). For `my_tests` they are test suites that a mutant analysis
must not reward: tests/test_capstone.py checks what each one scores."""
import runpy
from pathlib import Path

_RIGHT = runpy.run_path(str(Path(__file__).parent.parent / "right_answers" / "04-capstone.py"))
_FIXTURES = _RIGHT["_FIXTURES"]
_CREATE, _UPDATE, _DELETE, _READ = _RIGHT["_CREATE"], _RIGHT["_UPDATE"], _RIGHT["_DELETE"], _RIGHT["_READ"]

_UNSCOPED = '''
    ticket = await service.db.scalar(select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
'''
_SCOPED = '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
'''

WRONG_ANSWERS = {
    "create_ticket": {
        "no status_code on the decorator: 200 instead of 201": '''
forget_route(router, "POST", "/tickets")


@router.post("", response_model=TicketResponse)
async def create_ticket(data: TicketCreate, service: TicketServiceDep, current_user: CurrentUser):
    ticket = Ticket(title=data.title, description=data.description, user_id=current_user.id)
    service.db.add(ticket)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status_code=409) from None
    return ticket
''',
        "the owner read from the raw body when the client sends one": '''
forget_route(router, "POST", "/tickets")

from fastapi import Body


@router.post("", response_model=TicketResponse, status_code=status.HTTP_201_CREATED)
async def create_ticket(data: Annotated[dict, Body()], service: TicketServiceDep, current_user: CurrentUser):
    checked = TicketCreate.model_validate(data)
    ticket = Ticket(title=checked.title, description=checked.description,
                    user_id=data.get("user_id", current_user.id))
    service.db.add(ticket)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status_code=409) from None
    return ticket
''',
        "DuplicateTitle not caught: a duplicate title is a 500": _CREATE + '''
    ticket = Ticket(title=data.title, description=data.description, user_id=current_user.id)
    service.db.add(ticket)
    await service.commit()
    return ticket
''',
        "a duplicate check that counts deleted tickets too": _CREATE + '''
    taken = await service.db.scalar(
        select(Ticket.id).where(Ticket.user_id == current_user.id, Ticket.title == data.title))
    if taken is not None:
        raise HTTPException(status_code=409, detail="duplicate title")
    ticket = Ticket(title=data.title, description=data.description, user_id=current_user.id)
    service.db.add(ticket)
    await service.commit()
    return ticket
''',
        "flush instead of commit: the ticket vanishes with the session": _CREATE + '''
    ticket = Ticket(title=data.title, description=data.description, user_id=current_user.id)
    service.db.add(ticket)
    try:
        await service.db.flush()
    except IntegrityError:
        await service.db.rollback()
        raise HTTPException(status_code=409) from None
    return ticket
''',
    },
    "update_ticket": {
        "every field applied, exclude_unset forgotten": _UPDATE + _SCOPED + '''
    for field, value in changes.model_dump().items():
        setattr(ticket, field, value)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status_code=409) from None
    return ticket
''',
        "the ticket found by its id alone: anyone can change it": _UPDATE + _UNSCOPED + '''
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(ticket, field, value)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status_code=409) from None
    return ticket
''',
        "403 for someone else's ticket": _UPDATE + _UNSCOPED + '''
    if ticket.user_id != current_user.id:
        raise HTTPException(status_code=403, detail="Not your ticket")
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(ticket, field, value)
    try:
        await service.commit()
    except DuplicateTitle:
        raise HTTPException(status_code=409) from None
    return ticket
''',
        "a duplicate title is not answered 409": _UPDATE + _SCOPED + '''
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(ticket, field, value)
    await service.commit()
    return ticket
''',
    },
    "delete_ticket": {
        "a hard delete": _DELETE + _SCOPED + '''
    await service.db.delete(ticket)
    await service.commit()
''',
        "the ticket found by its id alone: anyone can delete it": _DELETE + _UNSCOPED + '''
    ticket.deleted_at = utcnow()
    await service.commit()
''',
        "200 with a body instead of 204": '''
forget_route(router, "DELETE", "/tickets/{ticket_id}")


@router.delete("/{ticket_id}")
async def delete_ticket(ticket_id: str, service: TicketServiceDep, current_user: CurrentUser):
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    ticket.deleted_at = utcnow()
    await service.commit()
    return {"deleted": ticket_id}
''',
        "deleted tickets are found again: deleting twice is 204 twice": _DELETE + '''
    ticket = await service.db.scalar(
        select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.user_id == current_user.id))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    ticket.deleted_at = utcnow()
    await service.commit()
''',
    },
    "read_ticket": {
        "no selectinload: lazy='raise' stops the response": _READ + '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
        "403 for someone else's ticket": _READ + '''
    ticket = await service.db.scalar(
        select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.deleted_at.is_(None))
        .options(selectinload(Ticket.comments)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    if ticket.user_id != current_user.id:
        raise HTTPException(status_code=403, detail="Not your ticket")
    return ticket
''',
        "the soft-delete filter forgotten": _READ + '''
    ticket = await service.db.scalar(
        select(Ticket).where(Ticket.ticket_id == ticket_id, Ticket.user_id == current_user.id)
        .options(selectinload(Ticket.comments)))
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    return ticket
''',
        "the comments without their order": _READ + '''
    ticket = await service.get_owned(ticket_id, current_user.id)
    if ticket is None:
        raise HTTPException(status_code=404, detail="Ticket not found")
    comments = (await service.db.scalars(
        select(Comment).where(Comment.ticket_id == ticket.id).order_by(Comment.body.desc()))).all()
    return {**TicketResponse.model_validate(ticket).model_dump(), "comments": comments}
''',
    },
    "my_tests": {
        "happy paths only: every request is the owner's, nothing is deleted twice or read after a rollback": _FIXTURES + '''

async def test_create(api, users):
    (_, ann_h), _ = users
    response = await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)
    assert response.status_code == 201
    assert response.json()["title"] == "Wifi"


async def test_update(api, users):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    response = await api.patch(f"/tickets/{ticket_id}", json={"title": "Wifi 6", "description": "d", "status": "closed"},
                               headers=ann_h)
    assert response.status_code == 200 and response.json()["title"] == "Wifi 6"


async def test_delete(api, users):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await api.delete(f"/tickets/{ticket_id}", headers=ann_h)).status_code == 204


async def test_read(api, users):
    (_, ann_h), _ = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    response = await api.get(f"/tickets/{ticket_id}", headers=ann_h)
    assert response.status_code == 200 and response.json()["comments"] == []
''',
        "a test that fails on the correct app (it expects 200 from POST)": _FIXTURES + '''

async def test_create_answers_200(api, users):
    (_, ann_h), _ = users
    assert (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).status_code == 200


async def test_someone_elses_ticket(api, users):
    (_, ann_h), (_, eve_h) = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await api.patch(f"/tickets/{ticket_id}", json={"title": "x"}, headers=eve_h)).status_code == 404
    assert (await api.delete(f"/tickets/{ticket_id}", headers=eve_h)).status_code == 404
    assert (await api.get(f"/tickets/{ticket_id}", headers=eve_h)).status_code == 404


async def test_limit(api, users):
    (_, ann_h), _ = users
    assert (await api.get("/tickets", params={"limit": 101}, headers=ann_h)).status_code == 422
''',
        "tests without asserts: they pass whatever the app does": _FIXTURES + '''

async def test_create(api, users):
    (_, ann_h), _ = users
    await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)


async def test_update_someone_elses(api, users):
    (_, ann_h), (_, eve_h) = users
    response = await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)
    await api.patch(f"/tickets/{response.json()['ticket_id']}", json={"title": "x"}, headers=eve_h)


async def test_list(api, users):
    (_, ann_h), _ = users
    await api.get("/tickets", params={"limit": 500}, headers=ann_h)
''',
        "asserts that cannot fail": _FIXTURES + '''

async def test_create(api, users):
    (_, ann_h), _ = users
    response = await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)
    assert response.status_code in (200, 201, 409)


async def test_someone_elses_ticket(api, users):
    (_, ann_h), (_, eve_h) = users
    ticket_id = (await api.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    response = await api.patch(f"/tickets/{ticket_id}", json={"title": "x"}, headers=eve_h)
    assert response.status_code == 404 or response.status_code != 404


async def test_list(api, users):
    (_, ann_h), _ = users
    response = await api.get("/tickets", params={"limit": 500}, headers=ann_h)
    assert response is not None
''',
        "the client built once, at the top level, from the notebook's own app: the grader's apps are never tested": '''
pytestmark = pytest.mark.anyio
my_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def session():
    engine = await create_test_engine()
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint")
        async def test_db():
            yield session
        my_client._transport.app.dependency_overrides[get_db] = test_db
        yield session
        my_client._transport.app.dependency_overrides.clear()
        await session.close()
        await transaction.rollback()
    await engine.dispose()


async def test_create(session):
    user = User(email="a@example.org", hashed_password="-")
    session.add(user)
    await session.commit()
    response = await my_client.post("/tickets", json={"title": "Wifi"}, headers=auth(user))
    assert response.status_code == 201


async def test_limit(session):
    user = User(email="a@example.org", hashed_password="-")
    session.add(user)
    await session.commit()
    assert (await my_client.get("/tickets", params={"limit": 101}, headers=auth(user))).status_code == 422


async def test_someone_elses(session):
    ann, eve = User(email="a@example.org", hashed_password="-"), User(email="e@example.org", hashed_password="-")
    session.add_all([ann, eve])
    await session.commit()
    ann_h, eve_h = auth(ann), auth(eve)
    ticket_id = (await my_client.post("/tickets", json={"title": "Wifi"}, headers=ann_h)).json()["ticket_id"]
    assert (await my_client.delete(f"/tickets/{ticket_id}", headers=eve_h)).status_code == 404
''',
    },
}
