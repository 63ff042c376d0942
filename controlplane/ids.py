import secrets


def new_id(prefix: str) -> str:
    """Short, URL-safe, prefixed ids (job_…, ses_…) that say what they name."""
    return f"{prefix}_{secrets.token_hex(10)}"


def new_job_id() -> str:
    return new_id("job")


def new_session_id() -> str:
    return new_id("ses")
