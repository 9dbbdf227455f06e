"""Correct answers for Section 1, written differently from the solution. Each must earn its exercise's full
marks (tests/test_grading.py). Answer k of every exercise goes into one submission, "right-k": exercises are
graded independently, so one notebook checks one answer per exercise."""

WRONG_ANSWER_FREE = None  # (nothing: this file holds right answers only)

RIGHT_ANSWERS = {
    "q1_nonblocking": {
        "the quiz's try/finally: a session opened by hand and closed in finally": '''
remove_route("/report")

@app.get("/report")
async def report():
    session = SessionLocal()
    try:
        result = await session.execute(REPORT_QUERY)
        row = result.one()
    finally:
        await session.close()
    return {"users": row[0], "loop_was_free": row[1] == 1}
''',
        "a yield dependency of its own and a response model": '''
from pydantic import BaseModel

remove_route("/report")

class Report(BaseModel):
    users: int
    loop_was_free: bool

async def report_session():
    async with SessionLocal() as session:
        yield session

@app.get("/report", response_model=Report)
async def report(session: Annotated[AsyncSession, Depends(report_session)]) -> Report:
    users, loop_was_free = (await session.execute(REPORT_QUERY)).one()
    return Report(users=users, loop_was_free=loop_was_free)
''',
        "a read inside session.begin(), the row read through its mapping": '''
remove_route("/report")

@app.get("/report")
async def report() -> dict:
    async with SessionLocal() as session, session.begin():
        row = (await session.execute(REPORT_QUERY)).one()._mapping
    return dict(users=row["users"], loop_was_free=bool(row["loop_was_free"]))
''',
    },
    "get_db": {
        "the quiz's pattern A, as printed": '''
async def get_db():
    session = AsyncSession(engine)
    try:
        yield session
    finally:
        await session.close()
''',
        "roll back on error, re-raise, close in finally": '''
async def get_db():
    session = SessionLocal()
    try:
        yield session
    except Exception:
        await session.rollback()
        raise
    finally:
        await session.close()
''',
        "an AsyncSession built in the async with, with the factory's settings spelled out": '''
async def get_db():
    """One session per request, closed however the request ends."""
    async with AsyncSession(engine, expire_on_commit=False) as db:
        yield db
''',
    },
    "q2_choice": {
        "typed in lower case, then upper-cased": 'q2_pattern = "a".upper()\nq2_reason = 2\n',
        "one tuple assignment": 'q2_pattern, q2_reason = "A", 2\n',
        "with comments, reason computed": '# A: yield + finally closes the session\nq2_pattern = "A"\nq2_reason = int("2")  # statement 2\n',
    },
    "q3_missing_await": {
        "session.scalars, awaited, then list()": '''
async def list_emails(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(User.email).order_by(User.id)))
''',
        "the whole User rows, emails taken in a comprehension": '''
async def list_emails(session: AsyncSession) -> list[str]:
    result = await session.execute(select(User).order_by(User.id.asc()))
    return [user.email for user in result.scalars()]
''',
        "streamed results with async for": '''
async def list_emails(session: AsyncSession) -> list[str]:
    emails = []
    async for email in await session.stream_scalars(select(User.email).order_by(User.id)):
        emails.append(email)
    return emails
''',
    },
}


# Issue 20: idioms not covered above, among them one that makes the stack print a deprecation warning (advice, not
# failure: coursekit.advice).
_ISSUE_20_RIGHT_ANSWERS = {
    "q1_nonblocking": {
        "SessionLocal.begin() and Result.tuples() (deprecated in SQLAlchemy 2.1: it warns, and still earns full marks)": '''
remove_route("/report")


@app.get("/report")
async def report():
    async with SessionLocal.begin() as session:
        users, loop_was_free = (await session.execute(REPORT_QUERY)).tuples().one()
    return {"users": users, "loop_was_free": bool(loop_was_free)}
''',
        "the query run through the sync ORM API on the async session's connection (run_sync)": '''
remove_route("/report")


def run_report(sync_session):
    return sync_session.execute(REPORT_QUERY).one()


@app.get("/report")
async def report():
    async with SessionLocal() as session:
        users, loop_was_free = await session.run_sync(run_report)
    return {"users": int(users), "loop_was_free": loop_was_free == 1}
''',
    },
    "get_db": {
        "one transaction per request: SessionLocal.begin() commits on success, rolls back on error, then closes": '''
async def get_db():
    async with SessionLocal.begin() as session:
        yield session
''',
        "contextlib.aclosing around the session": '''
from contextlib import aclosing


async def get_db():
    async with aclosing(SessionLocal()) as session:
        yield session
''',
    },
    "q2_choice": {
        "a dict of answers": 'answers = {"pattern": "A", "reason": 2}\nq2_pattern = answers["pattern"]\nq2_reason = answers["reason"]\n',
        "the letter stripped of spaces, the reason parsed from text": 'q2_pattern = " A ".strip()\nq2_reason = int("2")\n',
    },
    "q3_missing_await": {
        "each row unpacked in a comprehension over the awaited result": '''
async def list_emails(session: AsyncSession) -> list[str]:
    rows = await session.execute(select(User.email).order_by(User.id.asc()))
    return [email for (email,) in rows]
''',
        "the query run through the sync API on the session's connection (run_sync)": '''
async def list_emails(session: AsyncSession) -> list[str]:
    statement = select(User.email).order_by(User.id)
    return await session.run_sync(lambda sync_session: list(sync_session.scalars(statement)))
''',
    },
}
for _exercise, _variants in _ISSUE_20_RIGHT_ANSWERS.items():
    RIGHT_ANSWERS[_exercise].update(_variants)
