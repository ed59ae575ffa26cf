"""Secrets: passwords come from the environment (or ~/.pgpass) only, and never show.

Every CLI is run as a user would, with a password that is also an injection
attempt; its output, dbt's logs and PostgreSQL's own statement log are searched
for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import connect, run_dbt, run_loader

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt, the S3 server

SECRET = "pw'; drop role postgres; --\"$$s3cret-7f1c"
CLIS = ["sparkify.loader", "sparkify.roles", "sparkify.embedded_pg"]


def run_cli(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("module", CLIS)
def test_no_cli_takes_a_password_argument(server_env, module):
    helped = run_cli(server_env, module, "--help")
    assert helped.returncode == 0
    assert "--password" not in helped.stdout and "-W" not in helped.stdout
    # Refused as a usage error before anything connects (argparse echoes the bad
    # arguments back: one more reason a password never belongs on a command line).
    refused = run_cli({**server_env, "PGHOST": "/nonexistent"}, module, "--password", "x")
    assert refused.returncode == 2
    assert "error:" in refused.stderr


def test_loader_never_prints_the_password(db_env, tmp_path):
    feed = tmp_path / "feed"
    (feed / "log_data").mkdir(parents=True)
    (feed / "log_data" / "day.json").write_text('{"userId": "1"}\n')
    with_secret = {**db_env, "PGPASSWORD": SECRET}
    said = []
    for env in (
        {**with_secret, "PGHOST": str(tmp_path / "no-server")},  # cannot connect
        {**with_secret, "PGUSER": "no_such_role_here"},  # refused at login
        with_secret,  # a normal, verbose load
    ):
        result = run_loader(env, "-v", "--data-dir", feed)
        said.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
    assert all(SECRET not in text for text in said)
    assert "loaded 1 files" in said[-1]


def test_loader_never_prints_the_aws_secrets(
    moto,
    moto_with_auth,
    bucket,
    db_env,
    tmp_path,
):
    """An s3:// feed: the secret key and the session token, from the variables or
    from a profile's credentials file, are never said, whatever goes wrong."""
    moto.client().put_object(Bucket=bucket, Key="feed/log_data/day.json", Body=b'{"userId": "1"}\n')
    url = f"s3://{bucket}/feed"
    token = f"{SECRET}-token"
    with_secrets = {**moto.env(db_env), "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": token}
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        f"[sparkify]\naws_access_key_id = AKIATESTPROFILE\naws_secret_access_key = {SECRET}\n"
        f"aws_session_token = {token}\n"
    )
    from_profile = {
        key: value
        for key, value in with_secrets.items()
        if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }
    from_profile.update(AWS_PROFILE="sparkify", AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    said = []
    for env, code in (
        ({**with_secrets, "AWS_ENDPOINT_URL": moto_with_auth.endpoint}, 5),  # refused
        ({**from_profile, "AWS_ENDPOINT_URL": moto_with_auth.endpoint}, 5),  # refused
        ({**with_secrets, "AWS_ENDPOINT_URL": str(tmp_path)}, 4),  # no endpoint there
        ({**with_secrets, "AWS_PROFILE": "no_such_profile"}, 5),
        ({**from_profile, "PGHOST": str(tmp_path / "no-server")}, 1),  # listed, no database
        (with_secrets, 0),  # a normal, verbose load
    ):
        result = run_loader(env, "-v", "--data-dir", url)
        said.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr
        assert result.returncode == code, result.stderr
    assert all(SECRET not in text for text in said)
    assert "loaded 1 files" in said[-1]


def test_dbt_never_prints_the_password(db_env, tmp_path):
    env = {**db_env, "PGPASSWORD": SECRET, "PGHOST": str(tmp_path / "no-server")}
    result = run_dbt(env, tmp_path, "debug")
    assert result.returncode != 0  # it cannot connect, and says so
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "dbt-logs").rglob("*"))
    assert SECRET not in result.stdout + result.stderr + logs


def scram_matches(verifier: str, password: str) -> bool:
    """Does this SCRAM-SHA-256 verifier belong to this password? (RFC 5802/7677)"""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return (
        method == "SCRAM-SHA-256"
        and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key
        and base64.b64encode(hmac.new(salted, b"Server Key", hashlib.sha256).digest()).decode()
        == server_key
    )


def test_role_passwords_are_set_but_never_seen(roles):
    names, env = roles
    secrets = {job: f"{SECRET}-{job}" for job in names}
    with connect(env) as conn:
        data_directory = Path(conn.execute("show data_directory").fetchone()[0])
    server_log = data_directory / "log"
    log_before = server_log.stat().st_size if server_log.exists() else 0

    result = run_cli(
        {
            **env,
            # Log every statement of this session: the password must not be among them.
            "PGOPTIONS": "-c log_statement=all",
            **{f"SPARKIFY_{job.upper()}_PASSWORD": secret for job, secret in secrets.items()},
        },
        "sparkify.roles",
    )
    assert result.returncode == 0, result.stderr
    assert not any(secret in result.stdout + result.stderr for secret in secrets.values())

    with connect(env) as conn:
        stored = dict(
            conn.execute(
                "select rolname, rolpassword from pg_authid where rolname = any(%s)",
                [list(names.values())],
            ).fetchall()
        )
    for job, name in names.items():
        assert stored[name].startswith("SCRAM-SHA-256$")
        assert scram_matches(stored[name], secrets[job])
        assert secrets[job] not in stored[name]
    # The embedded servers log to DATADIR/log; a server elsewhere keeps its log to itself.
    if server_log.exists():
        with server_log.open("rb") as log:
            log.seek(log_before)
            logged = log.read().decode(errors="replace")
        assert "alter role" in logged.lower()  # the statements were logged ...
        assert not any(secret in logged for secret in secrets.values())  # ... not the passwords
