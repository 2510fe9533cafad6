"""The analytics schema: the catalog of datasets and sources, and where data lives.

- `analytics` holds the catalog (datasets, encrypted source DSNs, reader roles). The
  reader roles get no privilege on it: a query can never see a DSN or the catalog.
- `analytics_data` holds one table per dataset, named after the dataset.
- `bastion_analytics_reader` is the NOLOGIN role of queries that read no dataset;
  per-query roles (see `sandbox.roles`) are created on demand.
"""

from __future__ import annotations

from bastion.db.migrations import Migration, MigrationSet

__all__ = ["BASE_READER", "CATALOG_SCHEMA", "DATA_SCHEMA", "MIGRATIONS"]

CATALOG_SCHEMA = "analytics"
DATA_SCHEMA = "analytics_data"
BASE_READER = "bastion_analytics_reader"

_INITIAL = f"""
CREATE TABLE datasets (
    name        text        PRIMARY KEY,
    description text        NOT NULL DEFAULT '',
    owner       text        NOT NULL,
    format      text        NOT NULL,
    origin      text        NOT NULL,
    row_count   bigint      NOT NULL,
    columns     jsonb       NOT NULL,
    stats       jsonb       NOT NULL DEFAULT '{{}}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sources (
    name           text        PRIMARY KEY,
    dsn_ciphertext bytea       NOT NULL,
    display        text        NOT NULL,
    registered_by  text        NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);

-- One NOLOGIN role per set of datasets a query reads, so a query runs with SELECT
-- on exactly the tables it names.
CREATE TABLE reader_roles (
    role     text   PRIMARY KEY,
    datasets text[] NOT NULL
);
CREATE INDEX reader_roles_datasets ON reader_roles USING gin (datasets);

CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA};
REVOKE ALL ON SCHEMA {CATALOG_SCHEMA} FROM PUBLIC;
REVOKE ALL ON SCHEMA {DATA_SCHEMA} FROM PUBLIC;

DO $$
BEGIN
    -- Roles are cluster-wide: another database of this server may have made it.
    CREATE ROLE {BASE_READER} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
GRANT USAGE ON SCHEMA {DATA_SCHEMA} TO {BASE_READER};
"""

MIGRATIONS = MigrationSet(
    "analytics",
    CATALOG_SCHEMA,
    (Migration("0001_catalog", _INITIAL),),
)
