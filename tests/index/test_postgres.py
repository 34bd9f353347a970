"""The PostgreSQL section of the configuration, as Orthanc's PostgreSQL plugin reads it."""

from pharos.index.postgres import postgres_url


def test_url_from_the_fields() -> None:
    url = postgres_url(
        {"Host": "db", "Port": 5433, "Database": "pacs", "Username": "u", "Password": "p"}
    )
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db",
        5433,
        "pacs",
        "u",
        "p",
    )
    assert "sslmode" not in url.query


def test_ssl_and_empty_password() -> None:
    url = postgres_url({"Host": "db", "Database": "pacs", "Password": "", "EnableSsl": True})
    assert url.password is None and url.port == 5432
    assert url.query["sslmode"] == "require"


def test_connection_uri_wins() -> None:
    url = postgres_url(
        {"Host": "ignored", "ConnectionUri": "postgres://a:b@h:6000/x?sslmode=disable"}
    )
    assert (url.host, url.port, url.database, url.username) == ("h", 6000, "x", "a")
    assert url.drivername == "postgresql+psycopg"
    assert url.query["sslmode"] == "disable"
