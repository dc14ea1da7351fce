"""Credentials written in a URL: its ``user:password@`` password and the values of query keys
named like a credential (``password``, ``token``, ``key`` ... and apprise's ``pass``, ``pwd``,
``passwd``), masked the same way in ledger URLs, shown settings, logs and notification targets.

Every test uses secrets of its own: the registry is the process's, so a secret another test
registered would be masked here whatever the code under test did.
"""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from tradekit import redaction
from tradekit.cli import cli
from tradekit.ledger import Ledger, LedgerError
from tradekit.ledger.store import ledger_url
from tradekit.notify.targets import register_target_secrets


@pytest.mark.parametrize(
    "key",
    ["pass", "PASS", "pwd", "Pwd", "passwd", "PASSWD", "db_pass", "smtp-pwd", "password", "sslpassword", "api_key"],
)
def test_a_query_key_naming_a_password_is_a_secret_query_key(key: str) -> None:
    assert redaction.is_secret_query_key(key)


@pytest.mark.parametrize("key", ["bypass", "compass", "passive", "passage", "pass_through", "sslmode", "user", "to"])
def test_a_query_key_that_only_contains_pass_is_not_a_secret_query_key(key: str) -> None:
    # Its value would be masked wherever it appears ("true", "strict"): a garbled log, not a safer one.
    assert not redaction.is_secret_query_key(key)


def test_url_secrets_gives_a_pass_or_pwd_value_as_written_and_percent_decoded() -> None:
    found = redaction.url_secrets("postgresql://u@h/db?sslmode=require&pwd=Kd4%2Bw%40Tz&PASS=Hy6+Rq")
    assert {"Kd4%2Bw%40Tz", "Kd4+w@Tz", "Hy6+Rq", "Hy6 Rq"} <= set(found)
    assert "require" not in found


@pytest.mark.parametrize(
    ("key", "secret"), [("pwd", "Rv5NpwdQx8Lm2Tk7"), ("pass", "Gc3PassWz6Hb9Jn4"), ("passwd", "Fs7PasswdKe2Yt5")]
)
def test_a_ledger_url_password_under_pwd_pass_or_passwd_is_masked_in_errors_and_logs(
    key: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql+psycopg://tk@127.0.0.1:1/db?{key}={secret}"
    with pytest.raises(LedgerError) as refused:  # psycopg refuses the option before connecting
        Ledger.open(url)
    assert f"{key}=***" in str(refused.value)
    assert secret not in str(refused.value)
    # Registered when the URL was read: a library's log line quoting it is masked too.
    redaction.install()
    with caplog.at_level(logging.WARNING, logger="sqlalchemy.pool"):
        logging.getLogger("sqlalchemy.pool").warning("connecting to %s failed (%s)", url, secret[:10])
    assert secret[:8] not in caplog.text
    assert f"{key}={redaction.MASK}" in caplog.text
    assert redaction.redact(f"connecting with {secret}") == f"connecting with {redaction.MASK}"


def test_ledger_url_registers_a_short_pwd_and_its_percent_decoded_form() -> None:
    ledger_url("postgresql+psycopg://tk@127.0.0.1:1/db?sslmode=disable&pwd=Lq8%2BZ")
    assert redaction.redact("pwd Lq8+Z, sent as Lq8%2BZ, sslmode disable") == (
        f"pwd {redaction.MASK}, sent as {redaction.MASK}, sslmode disable"
    )


def test_the_cli_shows_a_ledger_url_with_its_pwd_or_pass_masked() -> None:
    pwd, password = "Xb2PwdCliNq7Ws4", "Mt9PassCliVd3Hk6"
    url = f"postgresql+psycopg://tk@127.0.0.1:1/db?sslmode=disable&pwd={pwd}&pass={password}"
    result = CliRunner().invoke(
        cli, ["config", "check", "--json"], env={"TRADEKIT_LEDGER__URL": url, "TRADEKIT_CONFIG": ""}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["settings"]["ledger"]["url"]
    assert shown == (
        f"postgresql+psycopg://tk@127.0.0.1:1/db?sslmode=disable&pwd={redaction.MASK}&pass={redaction.MASK}"
    )
    assert redaction.SECRETS.leaked(result.output) == []
    assert pwd not in result.output
    assert password not in result.output


def test_shown_settings_mask_a_pwd_or_pass_in_a_url() -> None:
    shown = redaction.redact_settings({"ledger": {"url": "postgresql://u@h/db?Pwd=Ns4Kw&pass=Tz8Qm&sslmode=require"}})
    assert shown == {
        "ledger": {"url": f"postgresql://u@h/db?Pwd={redaction.MASK}&pass={redaction.MASK}&sslmode=require"}
    }


# --- notification targets: what register_target_secrets registered before it used url_secrets ------


def test_a_target_password_under_any_case_of_pass_pwd_or_passwd_is_masked_however_short() -> None:
    register_target_secrets("ntfys://ntfy.example.com/alerts?user=ops&PWD=Jk4w&Passwd=Vn7%2Fq&pass=Wq3e")
    masked = redaction.redact("sent Jk4w, Vn7/q, Vn7%2Fq and Wq3e as ops")
    assert masked == (f"sent {redaction.MASK}, {redaction.MASK}, {redaction.MASK} and {redaction.MASK} as ops")


def test_a_target_password_with_a_space_is_masked() -> None:
    # apprise reads ``ops:my pw9@host`` as user "ops", password "my pw9": a URL in free text
    # holds no space, a target URL's userinfo may.
    register_target_secrets("mailto://ops:my pw9@mail.example.com?to=desk@example.com")
    assert redaction.redact("login ops/my pw9 refused") == f"login ops/{redaction.MASK} refused"


def test_a_short_target_password_with_a_colon_is_masked_whole() -> None:
    # Everything after the user's first colon is the password (RFC 3986, urllib, SQLAlchemy).
    register_target_secrets("mailto://desk:Cz5:Hv8@mail.example.com")
    assert redaction.redact("login desk/Cz5:Hv8 refused") == f"login desk/{redaction.MASK} refused"


def test_a_long_target_path_part_is_masked_but_not_its_host() -> None:
    register_target_secrets("tgram://123456789:Ab3Cd5Ef7Gh9Jk/98765?format=markdown")
    masked = redaction.redact("POST api.telegram.org/bot123456789:Ab3Cd5Ef7Gh9Jk/sendMessage chat 98765")
    assert "123456789" not in masked
    assert "Ab3Cd5Ef7Gh9Jk" not in masked
    assert "api.telegram.org" in masked
