-- usersvc's two database roles (docs/security.md, "Database roles"):
--
--   owner  owns the database's schema and every table in it; `usersvc migrate` runs as
--          it (USERSVC_MIGRATE_DATABASE_URL).
--   app    the runtime role the service and its relay run as (USERSVC_DATABASE_URL):
--          it reads and writes rows of the owner's tables, and nothing else: no DDL
--          (it owns nothing, may create nothing), no TRUNCATE, no temporary tables.
--          LISTEN/NOTIFY and advisory locks, which the relay uses, need no grant.
--
-- Run it once per database, as a superuser, with psql and its variables (the
-- passwords are required; the names have defaults):
--
--   psql -v ON_ERROR_STOP=1 -d usersvc -v database=usersvc \
--        -v owner=usersvc_owner -v owner_password="$POSTGRES_OWNER_PASSWORD" \
--        -v app=usersvc_app -v app_password="$POSTGRES_APP_PASSWORD" -f roles.sql
--
-- compose.yml runs it at its PostgreSQL's first boot (init-roles.sh). The statements
-- carry the passwords: run it where statements are not logged (log_statement = none,
-- the default); the server stores only their SCRAM hashes.

\if :{?database} \else \set database usersvc \endif
\if :{?owner} \else \set owner usersvc_owner \endif
\if :{?app} \else \set app usersvc_app \endif
\if :{?owner_password}
\else
    DO $$ BEGIN RAISE EXCEPTION 'roles.sql needs -v owner_password=... and -v app_password=...'; END $$;
\endif
\if :{?app_password}
\else
    DO $$ BEGIN RAISE EXCEPTION 'roles.sql needs -v owner_password=... and -v app_password=...'; END $$;
\endif

-- Made if missing, and in any case plain login roles with these passwords: running it
-- again (another database, a new password) is safe.
SELECT format('CREATE ROLE %I', name)
FROM unnest(ARRAY[:'owner', :'app']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';

-- Only these two may connect; nobody may create temporary tables.
ALTER DATABASE :"database" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app";

\connect :"database"

-- The migrations create their tables in public: the owner's schema, where nobody else
-- may create anything (PostgreSQL before 15 let every role create there).
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- Every table (and view) the owner creates from now on, in every later migration,
-- comes with row access for the runtime role: set once here, rather than a GRANT in
-- each migration naming a role the migrations cannot know. yoyo's four bookkeeping
-- tables get it too (it cannot tell them apart); the service only reads them, to see
-- that no migration is pending. The outbox's identity column needs no grant on its
-- sequence.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
-- Tables there already (a database migrated before it had two roles: give them to the
-- owner first, see docs/security.md).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
