"""Realistic wrong answers for Section 1. Each, put into an otherwise correct notebook, must lose the points
of its exercise and only those (tests/test_grading.py)."""

WRONG_ANSWERS = {
    "q1_nonblocking": {
        "keeps the synchronous Session (blocks the event loop)": '''
@app.get("/report")
async def report():
    with Session(sync_engine) as session:
        row = session.execute(REPORT_QUERY).one()
    return {"users": row.users, "loop_was_free": bool(row.loop_was_free)}
''',
        "forgets await on execute (500 error)": '''
@app.get("/report")
async def report():
    async with SessionLocal() as session:
        row = session.execute(REPORT_QUERY).one()
    return {"users": row.users, "loop_was_free": bool(row.loop_was_free)}
''',
        "plain def with a sync Session (threadpool, not AsyncSession)": '''
@app.get("/report")
def report():
    with Session(sync_engine) as session:
        row = session.execute(REPORT_QUERY).one()
    return {"users": row.users, "loop_was_free": bool(row.loop_was_free)}
''',
    },
    "get_db": {
        "pattern B: returns the session, never closes it": '''
async def get_db():
    session = SessionLocal()
    return session
''',
        "yields but never closes": '''
async def get_db():
    session = SessionLocal()
    yield session
''',
        "closes after yield without finally (skipped when the endpoint raises)": '''
async def get_db():
    session = SessionLocal()
    yield session
    await session.close()
''',
        "one shared session for every request": '''
shared_session = SessionLocal()

async def get_db():
    yield shared_session
''',
    },
    "q2_choice": {
        "picks B": 'q2_pattern = "B"\nq2_reason = 1\n',
        "right pattern, wrong reason (garbage collector)": 'q2_pattern = "A"\nq2_reason = 4\n',
    },
    "q3_missing_await": {
        "await on the wrong expression": '''
async def list_emails(session: AsyncSession) -> list[str]:
    return list(await session.execute(select(User.email).order_by(User.id)).scalars().all())
''',
        "still no await (returns a coroutine)": '''
async def list_emails(session: AsyncSession) -> list[str]:
    return session.scalars(select(User.email).order_by(User.id))
''',
        "forgets the order": '''
async def list_emails(session: AsyncSession) -> list[str]:
    result = await session.execute(select(User.email).order_by(User.email.desc()))
    return list(result.scalars().all())
''',
    },
}


# More wrong answers, each one that the tests before issue 12 let through (or another way of dodging the lesson).
_MORE_WRONG_ANSWERS = {
    "q1_nonblocking": {
        "users hard-coded to the 3 seeded users (the count is never read)": '''
remove_route("/report")


@app.get("/report")
async def report():
    async with SessionLocal() as session:
        row = (await session.execute(REPORT_QUERY)).one()
    return {"users": 3, "loop_was_free": bool(row.loop_was_free)}
''',
        "loop_was_free hard-coded True (the database's answer is thrown away)": '''
remove_route("/report")


@app.get("/report")
async def report():
    async with SessionLocal() as session:
        row = (await session.execute(REPORT_QUERY)).one()
    return {"users": row.users, "loop_was_free": True}
''',
    },
    "get_db": {
        "closes on success and on HTTPException, leaks on any other error": '''
async def get_db():
    session = SessionLocal()
    try:
        yield session
    except HTTPException:
        await session.close()
        raise
    await session.close()
''',
        "swallows the endpoint's exception while closing": '''
async def get_db():
    async with SessionLocal() as session:
        try:
            yield session
        except Exception:
            pass
''',
    },
    "q2_choice": {
        "pattern B with the right reason's words": 'q2_pattern = "B"\nq2_reason = 2\n',
        "A, because the engine is created again": 'q2_pattern = "A"\nq2_reason = 3\n',
    },
    "q3_missing_await": {
        "ignores the session it is given (opens its own: misses what the caller's session holds)": '''
async def list_emails(session: AsyncSession) -> list[str]:
    async with SessionLocal() as own_session:
        result = await own_session.execute(select(User.email).order_by(User.id))
        return list(result.scalars().all())
''',
        "ordered by email instead of id": '''
async def list_emails(session: AsyncSession) -> list[str]:
    result = await session.execute(select(User.email).order_by(User.email))
    return list(result.scalars().all())
''',
    },
}
for _exercise, _mistakes in _MORE_WRONG_ANSWERS.items():
    WRONG_ANSWERS[_exercise].update(_mistakes)


# Issue 20: wrong answers that the tests before issue 20 let through; each states what it misses of the instructions.
_ISSUE_20_WRONG_ANSWERS = {
    "q1_nonblocking": {
        "users counted by loading every row into Python (REPORT_QUERY's count is never read), with .tuples()": '''
remove_route("/report")


@app.get("/report")
async def report():
    async with SessionLocal() as session:
        user_ids = (await session.execute(select(User.id))).tuples().all()
        loop_was_free = (await session.execute(select(func.slow_report_work()))).scalar_one()
    return {"users": len(user_ids), "loop_was_free": bool(loop_was_free)}
''',
        "REPORT_QUERY run, then the users counted again with a second query": '''
remove_route("/report")


@app.get("/report")
async def report():
    async with SessionLocal() as session:
        row = (await session.execute(REPORT_QUERY)).one()
        users = await session.scalar(select(func.count()).select_from(User))
    return {"users": users, "loop_was_free": bool(row.loop_was_free)}
''',
    },
    "get_db": {
        "rolls back in finally but never closes the session": '''
async def get_db():
    session = SessionLocal()
    try:
        yield session
    finally:
        await session.rollback()
''',
        "commits on success, rolls back on error, never closes": '''
async def get_db():
    session = SessionLocal()
    try:
        yield session
    except Exception:
        await session.rollback()
        raise
    else:
        await session.commit()
''',
    },
    "q2_choice": {  # a choice's hidden test compares the value: every wrong choice was caught before too
        "A, because return is faster": 'q2_pattern = "A"\nq2_reason = 1\n',
        "B, because the garbage collector closes it": 'q2_pattern = "B"\nq2_reason = 4\n',
    },
    "q3_missing_await": {
        "a LIMIT but no ORDER BY (the storage order happens to be the id order)": '''
async def list_emails(session: AsyncSession) -> list[str]:
    result = await session.execute(select(User.email).limit(1000))
    return list(result.scalars().all())
''',
        "a WHERE on the id instead of ORDER BY": '''
async def list_emails(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(User.email).where(User.id > 0))).all())
''',
    },
}
for _exercise, _mistakes in _ISSUE_20_WRONG_ANSWERS.items():
    WRONG_ANSWERS[_exercise].update(_mistakes)
