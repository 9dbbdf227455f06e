"""Correct answers for Section 2, written differently from the solution. Each must earn its exercise's full
marks (tests/test_grading.py). Answer k of every exercise goes into one submission, "right-k": exercises are
graded independently, so one notebook checks one answer per exercise."""

RIGHT_ANSWERS = {
    "q4_request_cache": {
        "async dependencies, the audit log declared with a default value (the quiz's style)": '''
q4_router = APIRouter()

RequestId = Annotated[str, Depends(get_request_id)]
FreshNonce = Annotated[str, Depends(new_nonce, use_cache=False)]


async def get_audit_log(settings: Settings = Depends(get_settings), request_id: str = Depends(get_request_id)) -> AuditLog:
    return AuditLog(app_name=settings.app_name, request_id=request_id)


@q4_router.get("/report")
async def report(
    nonce_b: FreshNonce,
    nonce_a: FreshNonce,
    request_id: RequestId,
    audit: AuditLog = Depends(get_audit_log),
):
    return dict(app_name=audit.app_name, request_id=request_id, audit_request_id=audit.request_id,
                nonces=[nonce_a, nonce_b])
''',
        "an alias for the audit log and a response model": '''
q4_router = APIRouter()

RequestId = Annotated[str, Depends(get_request_id)]
FreshNonce = Annotated[str, Depends(new_nonce, use_cache=False)]


def get_audit_log(settings: SettingsDep, request_id: RequestId) -> AuditLog:
    log = AuditLog(app_name=settings.app_name, request_id=request_id)
    log.lines.append(f"{request_id}: report requested")
    return log


AuditDep = Annotated[AuditLog, Depends(get_audit_log)]


class ReportOut(BaseModel):
    app_name: str
    request_id: str
    audit_request_id: str
    nonces: list[str]


@q4_router.get("/report", response_model=ReportOut)
def report(request_id: RequestId, audit: AuditDep, nonce_a: FreshNonce, nonce_b: FreshNonce) -> ReportOut:
    return ReportOut(app_name=audit.app_name, request_id=request_id, audit_request_id=audit.request_id,
                     nonces=[nonce_a, nonce_b])
''',
        "the route added with add_api_route": '''
q4_router = APIRouter()

RequestId = Annotated[str, Depends(get_request_id)]
FreshNonce = Annotated[str, Depends(new_nonce, use_cache=False)]


def get_audit_log(settings: SettingsDep, request_id: RequestId) -> AuditLog:
    return AuditLog(settings.app_name, request_id)


def report(request_id: RequestId, audit: Annotated[AuditLog, Depends(get_audit_log)],
           nonce_a: FreshNonce, nonce_b: FreshNonce) -> dict:
    nonces = [nonce_a, nonce_b]
    return {"app_name": audit.app_name, "request_id": request_id, "audit_request_id": audit.request_id,
            "nonces": nonces}


q4_router.add_api_route("/report", report, methods=["GET"])
''',
    },
    "get_current_user": {
        'RFC 6750 challenge: Bearer error="invalid_token"': '''
async def get_current_user(
    token: Annotated[str, Depends(oauth2_scheme)],
    db: SessionDep,
) -> User:
    invalid_token = HTTPException(
        status_code=401,
        detail="Invalid or expired token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
    try:
        claims = jwt.decode(token, SECRET_KEY, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        user = await db.get(User, int(claims["sub"]))
    except (jwt.InvalidTokenError, ValueError):
        raise invalid_token from None
    if user is None:
        raise invalid_token
    return user
''',
        "the quiz's answer ported to PyJWT and fixed, in the quiz's Depends style": '''
async def get_current_user(
    token: str = Depends(oauth2_scheme),
    db: AsyncSession = Depends(get_db),
) -> User:
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
        user_id = payload.get("sub")
        if user_id is None or not user_id.isdigit():
            raise HTTPException(status_code=401, detail="Invalid token", headers={"WWW-Authenticate": "Bearer"})
    except jwt.InvalidTokenError:
        raise HTTPException(status_code=401, detail="Invalid token", headers={"WWW-Authenticate": "Bearer"})
    result = await db.execute(select(User).where(User.id == int(user_id)))
    user = result.scalar_one_or_none()
    if user is None:
        raise HTTPException(status_code=401, detail="Invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user
''',
        "a helper that decodes, separate except clauses, a small leeway for clock skew": '''
def user_id_from(token: str) -> int:
    """The user id in a valid access token; raises jwt.InvalidTokenError or ValueError otherwise."""
    claims = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM], leeway=10,
                        options={"require": ["exp", "sub"], "verify_signature": True})
    return int(claims["sub"])


async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], db: SessionDep) -> User:
    def unauthorized(reason: str) -> HTTPException:
        return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "bearer"})

    try:
        user_id = user_id_from(token)
    except jwt.ExpiredSignatureError:
        raise unauthorized("Token expired") from None
    except jwt.InvalidTokenError:
        raise unauthorized("Invalid token") from None
    except ValueError:
        raise unauthorized("Invalid token") from None
    if (user := await db.get(User, user_id)) is None:
        raise unauthorized("Invalid token")
    return user
''',
    },
    "override_get_db": {
        "the quiz's AsyncSession(test_engine), with expire_on_commit=False": '''
async def override_get_db():
    async with AsyncSession(test_engine, expire_on_commit=False) as session:
        yield session


def use_test_database(app: FastAPI) -> None:
    app.dependency_overrides[get_db] = override_get_db
''',
        "try/finally, and dict.update": '''
async def override_get_db():
    """Stand-in for get_db in tests: one session on the TEST database per request, always closed."""
    session = TestSessionLocal()
    try:
        yield session
    finally:
        await session.close()


def use_test_database(app: FastAPI) -> None:
    """Make every dependency on get_db in `app` use override_get_db instead."""
    app.dependency_overrides.update({get_db: override_get_db})
''',
        "the app's own factory bound to the test engine; the key read from the alias": '''
async def override_get_db():
    async with SessionLocal(bind=test_engine) as session:
        yield session


def use_test_database(app: FastAPI) -> None:
    original = SessionDep.__metadata__[0].dependency  # the function SessionDep's Depends() names: get_db
    app.dependency_overrides[original] = override_get_db
''',
    },
    "q6_choice": {
        "one line": "q6_key, q6_clear = 3, 4\n",
        "looked up by meaning": 'keys = {"name": 1, "parameter": 2, "callable": 3, "path": 4}\nq6_key = keys["callable"]\nq6_clear = 4  # in the fixture\'s teardown\n',
        "reversed order": "q6_clear = 4\nq6_key = 3\n",
    },
}


# Issue 20: idioms not covered above.
_ISSUE_20_RIGHT_ANSWERS = {
    "q4_request_cache": {
        "the audit log from a callable class instance, the nonces declared inline": '''
q4_router = APIRouter()

RequestId = Annotated[str, Depends(get_request_id)]
FreshNonce = Annotated[str, Depends(new_nonce, use_cache=False)]


class AuditLogFactory:
    """A dependency can be any callable: FastAPI reads the signature of __call__."""

    def __call__(self, settings: SettingsDep, request_id: RequestId) -> AuditLog:
        return AuditLog(app_name=settings.app_name, request_id=request_id)


get_audit_log = AuditLogFactory()


@q4_router.get("/report")
def report(request_id: RequestId, audit: Annotated[AuditLog, Depends(get_audit_log)],
           nonce_a: Annotated[str, Depends(new_nonce, use_cache=False)],
           nonce_b: Annotated[str, Depends(new_nonce, use_cache=False)]):
    return {"app_name": audit.app_name, "request_id": request_id, "audit_request_id": audit.request_id,
            "nonces": [nonce_a, nonce_b]}
''',
        "api_route with methods, the body built by a helper": '''
q4_router = APIRouter()

RequestId = Annotated[str, Depends(get_request_id)]
FreshNonce = Annotated[str, Depends(new_nonce, use_cache=False)]


def get_audit_log(request_id: RequestId, settings: SettingsDep) -> AuditLog:
    return AuditLog(request_id=request_id, app_name=settings.app_name)


AuditDep = Annotated[AuditLog, Depends(get_audit_log)]


def report_body(audit: AuditLog, request_id: str, *nonces: str) -> dict:
    return {"app_name": audit.app_name, "request_id": request_id, "audit_request_id": audit.request_id,
            "nonces": list(nonces)}


@q4_router.api_route("/report", methods=["GET"])
async def report(audit: AuditDep, request_id: RequestId, nonce_a: FreshNonce, nonce_b: FreshNonce) -> dict:
    return report_body(audit, request_id, nonce_a, nonce_b)
''',
    },
    "get_current_user": {
        "decode_complete, a select with scalar_one_or_none, one error object": '''
async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], db: SessionDep) -> User:
    not_authenticated = HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    try:
        decoded = jwt.decode_complete(token, SECRET_KEY, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        subject = int(decoded["payload"]["sub"])
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise not_authenticated from None
    user = (await db.execute(select(User).where(User.id == subject))).scalar_one_or_none()
    if user is None:
        raise not_authenticated
    return user
''',
        "an HTTPException subclass for 401, the subject checked with str.isdecimal": '''
class NotAuthenticated(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=status.HTTP_401_UNAUTHORIZED, detail="Could not validate credentials",
                         headers={"WWW-Authenticate": "Bearer"})


async def get_current_user(token: Annotated[str, Depends(oauth2_scheme)], db: SessionDep) -> User:
    try:
        claims = jwt.decode(token, key=SECRET_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        raise NotAuthenticated() from None
    subject = claims["sub"]
    if not (isinstance(subject, str) and subject.isdecimal()):
        raise NotAuthenticated()
    user = await db.get(User, int(subject))
    if user is None:
        raise NotAuthenticated()
    return user
''',
    },
    "override_get_db": {
        "an asynccontextmanager helper, the overrides merged with |=": '''
from contextlib import asynccontextmanager


@asynccontextmanager
async def test_session():
    async with TestSessionLocal() as session:
        yield session


async def override_get_db():
    async with test_session() as session:
        yield session


def use_test_database(app: FastAPI) -> None:
    app.dependency_overrides |= {get_db: override_get_db}
''',
        "the override made by a small factory function": '''
def session_dependency(factory: async_sessionmaker):
    """A yield dependency that hands out one session of `factory` per request and closes it."""
    async def dependency():
        async with factory() as session:
            yield session
    return dependency


override_get_db = session_dependency(TestSessionLocal)


def use_test_database(app: FastAPI) -> None:
    overrides = app.dependency_overrides
    overrides[get_db] = override_get_db
''',
    },
    "q6_choice": {
        "picked from lists by position": "q6_key = [1, 2, 3, 4][2]\nq6_clear = [1, 2, 3, 4][-1]\n",
        "parsed from text": 'q6_key = int("3")\nq6_clear = int(" 4 ")\n',
    },
}
for _exercise, _variants in _ISSUE_20_RIGHT_ANSWERS.items():
    RIGHT_ANSWERS[_exercise].update(_variants)
