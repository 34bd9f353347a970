"""The metadata database: one narrow interface, SQLAlchemy Core on SQLite and PostgreSQL."""
