-- PostgreSQL set-up of the JID's job store. Run once as the superuser:
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -f deploy/postgresql/setup.sql
-- Names default to lute_jid; `-v jid_role=NAME -v jid_database=NAME` change them.
-- The JID creates its tables itself at first start, as the database's owner.
\if :{?jid_role}
\else
\set jid_role lute_jid
\endif
\if :{?jid_database}
\else
\set jid_database lute_jid
\endif

-- No password: on the JID's host it logs in over the Unix socket as the
-- service's own user (peer authentication, see pg_hba.conf.example). A JID on
-- another host uses scram-sha-256 with the password in a private .pgpass file.
CREATE ROLE :"jid_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"jid_database" OWNER :"jid_role" ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE :"jid_database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"jid_database" TO :"jid_role";

\connect :"jid_database"
-- only the JID's role may create or read anything in its database
ALTER SCHEMA public OWNER TO :"jid_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
