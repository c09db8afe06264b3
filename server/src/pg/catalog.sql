-- The PostgreSQL-shaped system catalog of one dataset, as drivers and BI tools
-- query it (pg/catalog.rs fills the rows). Column names and order are
-- PostgreSQL 16's; oids are UINTEGER (PostgreSQL's are unsigned 32-bit; they
-- go to clients as type oid). The tables live in `main`, so an unqualified
-- name finds them before DuckDB's own pg_catalog views, and pg/compat.rs drops
-- the `pg_catalog.` qualifier and turns `information_schema.x` into
-- `information_schema_x`.

CREATE TYPE regclass AS UINTEGER;
CREATE TYPE regtype AS UINTEGER;
CREATE TYPE regproc AS VARCHAR;
CREATE TYPE regprocedure AS VARCHAR;
CREATE TYPE regnamespace AS UINTEGER;
CREATE TYPE regrole AS UINTEGER;
CREATE TYPE xid AS UINTEGER;
CREATE TYPE "name" AS VARCHAR;
CREATE TYPE int2vector AS VARCHAR;
CREATE TYPE oidvector AS VARCHAR;
CREATE TYPE pg_node_tree AS VARCHAR;
CREATE TYPE aclitem AS VARCHAR;

CREATE TABLE pg_namespace (oid UINTEGER, nspname VARCHAR, nspowner UINTEGER, nspacl VARCHAR[]);
INSERT INTO pg_namespace VALUES (11, 'pg_catalog', 10, NULL), (2200, 'main', 10, NULL), (13000, 'information_schema', 10, NULL);

CREATE TABLE pg_class (
    oid UINTEGER, relname VARCHAR, relnamespace UINTEGER, reltype UINTEGER, reloftype UINTEGER, relowner UINTEGER, relam UINTEGER,
    relfilenode UINTEGER, reltablespace UINTEGER, relpages INTEGER, reltuples REAL, relallvisible INTEGER, reltoastrelid UINTEGER,
    relhasindex BOOLEAN, relisshared BOOLEAN, relpersistence VARCHAR, relkind VARCHAR, relnatts SMALLINT, relchecks SMALLINT,
    relhasrules BOOLEAN, relhastriggers BOOLEAN, relhassubclass BOOLEAN, relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN,
    relispopulated BOOLEAN, relreplident VARCHAR, relispartition BOOLEAN, relrewrite UINTEGER, relfrozenxid UINTEGER,
    relminmxid UINTEGER, relacl VARCHAR[], reloptions VARCHAR[], relpartbound VARCHAR
);

CREATE TABLE pg_attribute (
    attrelid UINTEGER, attname VARCHAR, atttypid UINTEGER, attlen SMALLINT, attnum SMALLINT, attcacheoff INTEGER,
    atttypmod INTEGER, attndims SMALLINT, attbyval BOOLEAN, attalign VARCHAR, attstorage VARCHAR, attcompression VARCHAR,
    attnotnull BOOLEAN, atthasdef BOOLEAN, atthasmissing BOOLEAN, attidentity VARCHAR, attgenerated VARCHAR,
    attisdropped BOOLEAN, attislocal BOOLEAN, attinhcount SMALLINT, attstattarget SMALLINT, attcollation UINTEGER,
    attacl VARCHAR[], attoptions VARCHAR[], attfdwoptions VARCHAR[], attmissingval VARCHAR
);

CREATE TABLE pg_type (
    oid UINTEGER, typname VARCHAR, typnamespace UINTEGER, typowner UINTEGER, typlen SMALLINT, typbyval BOOLEAN, typtype VARCHAR,
    typcategory VARCHAR, typispreferred BOOLEAN, typisdefined BOOLEAN, typdelim VARCHAR, typrelid UINTEGER,
    typsubscript VARCHAR, typelem UINTEGER, typarray UINTEGER, typinput VARCHAR, typoutput VARCHAR, typreceive VARCHAR,
    typsend VARCHAR, typmodin VARCHAR, typmodout VARCHAR, typanalyze VARCHAR, typalign VARCHAR, typstorage VARCHAR,
    typnotnull BOOLEAN, typbasetype UINTEGER, typtypmod INTEGER, typndims INTEGER, typcollation UINTEGER, typdefaultbin VARCHAR,
    typdefault VARCHAR, typacl VARCHAR[]
);

-- format_type()'s spelling of each type (not a PostgreSQL table).
CREATE TABLE tag_type_display (oid UINTEGER, display VARCHAR);

CREATE TABLE pg_index (
    indexrelid UINTEGER, indrelid UINTEGER, indnatts SMALLINT, indnkeyatts SMALLINT, indisunique BOOLEAN,
    indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN,
    indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN, indisreplident BOOLEAN,
    indkey SMALLINT[], indcollation UINTEGER[], indclass UINTEGER[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR
);

CREATE TABLE pg_constraint (
    oid UINTEGER, conname VARCHAR, connamespace UINTEGER, contype VARCHAR, condeferrable BOOLEAN, condeferred BOOLEAN,
    convalidated BOOLEAN, conrelid UINTEGER, contypid UINTEGER, conindid UINTEGER, conparentid UINTEGER, confrelid UINTEGER,
    confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN, coninhcount SMALLINT,
    connoinherit BOOLEAN, conkey SMALLINT[], confkey SMALLINT[], conpfeqop UINTEGER[], conppeqop UINTEGER[], conffeqop UINTEGER[],
    confdelsetcols SMALLINT[], conexclop UINTEGER[], conbin VARCHAR
);

-- pg_get_constraintdef() and pg_get_indexdef() of each constraint and index.
CREATE TABLE tag_definitions (oid UINTEGER, definition VARCHAR);

CREATE TABLE pg_description (objoid UINTEGER, classoid UINTEGER, objsubid INTEGER, description VARCHAR);

CREATE TABLE pg_am (oid UINTEGER, amname VARCHAR, amhandler VARCHAR, amtype VARCHAR);
INSERT INTO pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't'), (403, 'btree', 'bthandler', 'i');

CREATE TABLE pg_database (
    oid UINTEGER, datname VARCHAR, datdba UINTEGER, encoding INTEGER, datlocprovider VARCHAR, datistemplate BOOLEAN,
    datallowconn BOOLEAN, datconnlimit INTEGER, datfrozenxid UINTEGER, datminmxid UINTEGER, dattablespace UINTEGER,
    datcollate VARCHAR, datctype VARCHAR, daticulocale VARCHAR, daticurules VARCHAR, datcollversion VARCHAR, datacl VARCHAR[]
);

CREATE TABLE pg_roles (
    rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN, rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN,
    rolreplication BOOLEAN, rolconnlimit INTEGER, rolpassword VARCHAR, rolvaliduntil TIMESTAMPTZ, rolbypassrls BOOLEAN,
    rolconfig VARCHAR[], oid UINTEGER
);
INSERT INTO pg_roles VALUES ('tag-server', false, true, false, false, true, false, -1, '********', NULL, false, NULL, 10);
CREATE VIEW pg_authid AS SELECT * FROM pg_roles;
CREATE VIEW pg_user AS SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, rolsuper AS usesuper,
    rolreplication AS userepl, rolbypassrls AS usebypassrls, rolpassword AS passwd, rolvaliduntil AS valuntil, rolconfig AS useconfig FROM pg_roles;

CREATE TABLE pg_tablespace (oid UINTEGER, spcname VARCHAR, spcowner UINTEGER, spcacl VARCHAR[], spcoptions VARCHAR[]);
INSERT INTO pg_tablespace VALUES (1663, 'pg_default', 10, NULL, NULL);

CREATE TABLE pg_collation (
    oid UINTEGER, collname VARCHAR, collnamespace UINTEGER, collowner UINTEGER, collprovider VARCHAR, collisdeterministic BOOLEAN,
    collencoding INTEGER, collcollate VARCHAR, collctype VARCHAR, colliculocale VARCHAR, collicurules VARCHAR, collversion VARCHAR
);
INSERT INTO pg_collation VALUES (100, 'default', 11, 10, 'd', true, -1, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE pg_settings (name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR, short_desc VARCHAR, extra_desc VARCHAR,
    context VARCHAR, vartype VARCHAR, source VARCHAR, min_val VARCHAR, max_val VARCHAR, enumvals VARCHAR[], boot_val VARCHAR,
    reset_val VARCHAR, sourcefile VARCHAR, sourceline INTEGER, pending_restart BOOLEAN);
INSERT INTO pg_settings (name, setting, context, vartype, source, boot_val, reset_val) VALUES
    ('max_index_keys', '32', 'internal', 'integer', 'default', '32', '32'),
    ('max_identifier_length', '63', 'internal', 'integer', 'default', '63', '63'),
    ('server_encoding', 'UTF8', 'internal', 'string', 'default', 'UTF8', 'UTF8'),
    ('client_encoding', 'UTF8', 'user', 'string', 'default', 'UTF8', 'UTF8'),
    ('standard_conforming_strings', 'on', 'user', 'bool', 'default', 'on', 'on'),
    ('integer_datetimes', 'on', 'internal', 'bool', 'default', 'on', 'on'),
    ('DateStyle', 'ISO, MDY', 'user', 'string', 'default', 'ISO, MDY', 'ISO, MDY'),
    ('TimeZone', 'UTC', 'user', 'string', 'default', 'UTC', 'UTC'),
    ('search_path', 'main', 'user', 'string', 'default', 'main', 'main'),
    ('default_transaction_read_only', 'on', 'user', 'bool', 'default', 'on', 'on'),
    ('transaction_read_only', 'on', 'user', 'bool', 'default', 'on', 'on'),
    ('max_connections', '100', 'postmaster', 'integer', 'default', '100', '100'),
    ('default_table_access_method', 'heap', 'user', 'string', 'default', 'heap', 'heap'),
    ('server_version', '16.0', 'internal', 'string', 'default', '16.0', '16.0'),
    ('server_version_num', '160000', 'internal', 'integer', 'default', '160000', '160000'),
    ('jit', 'off', 'user', 'bool', 'default', 'off', 'off');

-- Catalogs this server has nothing in: no rules, triggers, policies, partitions,
-- inheritance, publications, extended statistics, sequences, functions, ...
CREATE TABLE pg_inherits (inhrelid UINTEGER, inhparent UINTEGER, inhseqno INTEGER, inhdetachpending BOOLEAN);
CREATE TABLE pg_partitioned_table (partrelid UINTEGER, partstrat VARCHAR, partnatts SMALLINT, partdefid UINTEGER, partattrs SMALLINT[]);
CREATE TABLE pg_attrdef (oid UINTEGER, adrelid UINTEGER, adnum SMALLINT, adbin VARCHAR);
CREATE TABLE pg_trigger (oid UINTEGER, tgrelid UINTEGER, tgparentid UINTEGER, tgname VARCHAR, tgfoid UINTEGER, tgtype SMALLINT,
    tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstrrelid UINTEGER, tgconstrindid UINTEGER, tgconstraint UINTEGER);
CREATE TABLE pg_rewrite (oid UINTEGER, rulename VARCHAR, ev_class UINTEGER, ev_type VARCHAR, ev_enabled VARCHAR, is_instead BOOLEAN);
CREATE TABLE pg_policy (oid UINTEGER, polname VARCHAR, polrelid UINTEGER, polcmd VARCHAR, polpermissive BOOLEAN, polroles UINTEGER[], polqual VARCHAR, polwithcheck VARCHAR);
CREATE TABLE pg_statistic_ext (oid UINTEGER, stxrelid UINTEGER, stxname VARCHAR, stxnamespace UINTEGER, stxowner UINTEGER,
    stxstattarget INTEGER, stxkeys SMALLINT[], stxkind VARCHAR[], stxexprs VARCHAR);
CREATE TABLE pg_statistic_ext_data (stxoid UINTEGER, stxdinherit BOOLEAN);
CREATE TABLE pg_publication (oid UINTEGER, pubname VARCHAR, pubowner UINTEGER, puballtables BOOLEAN, pubinsert BOOLEAN,
    pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN);
CREATE TABLE pg_publication_rel (oid UINTEGER, prpubid UINTEGER, prrelid UINTEGER, prqual VARCHAR, prattrs SMALLINT[]);
CREATE TABLE pg_publication_namespace (oid UINTEGER, pnpubid UINTEGER, pnnspid UINTEGER);
CREATE TABLE pg_sequence (seqrelid UINTEGER, seqtypid UINTEGER, seqstart BIGINT, seqincrement BIGINT, seqmax BIGINT, seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN);
CREATE TABLE pg_depend (classid UINTEGER, objid UINTEGER, objsubid INTEGER, refclassid UINTEGER, refobjid UINTEGER, refobjsubid INTEGER, deptype VARCHAR);
CREATE TABLE pg_foreign_table (ftrelid UINTEGER, ftserver UINTEGER, ftoptions VARCHAR[]);
CREATE TABLE pg_extension (oid UINTEGER, extname VARCHAR, extowner UINTEGER, extnamespace UINTEGER, extrelocatable BOOLEAN, extversion VARCHAR);
CREATE TABLE pg_enum (oid UINTEGER, enumtypid UINTEGER, enumsortorder REAL, enumlabel VARCHAR);
CREATE TABLE pg_range (rngtypid UINTEGER, rngsubtype UINTEGER, rngmultitypid UINTEGER);
CREATE TABLE pg_event_trigger (oid UINTEGER, evtname VARCHAR, evtevent VARCHAR);
CREATE TABLE pg_matviews (schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, definition VARCHAR);
CREATE TABLE pg_proc (oid UINTEGER, proname VARCHAR, pronamespace UINTEGER, proowner UINTEGER, prolang UINTEGER, prokind VARCHAR,
    prorettype UINTEGER, proargtypes VARCHAR, proretset BOOLEAN, prosrc VARCHAR);
CREATE TABLE pg_operator (oid UINTEGER, oprname VARCHAR, oprnamespace UINTEGER, oprleft UINTEGER, oprright UINTEGER, oprresult UINTEGER);
CREATE TABLE pg_cast (oid UINTEGER, castsource UINTEGER, casttarget UINTEGER, castfunc UINTEGER, castcontext VARCHAR, castmethod VARCHAR);
CREATE TABLE pg_language (oid UINTEGER, lanname VARCHAR, lanowner UINTEGER, lanispl BOOLEAN, lanpltrusted BOOLEAN);
CREATE TABLE pg_shdescription (objoid UINTEGER, classoid UINTEGER, description VARCHAR);
CREATE TABLE pg_stat_activity (datid UINTEGER, datname VARCHAR, pid INTEGER, usename VARCHAR, application_name VARCHAR, state VARCHAR, query VARCHAR);
CREATE TABLE pg_opclass (oid UINTEGER, opcmethod UINTEGER, opcname VARCHAR, opcnamespace UINTEGER, opcowner UINTEGER, opcfamily UINTEGER,
    opcintype UINTEGER, opcdefault BOOLEAN, opckeytype UINTEGER);
CREATE TABLE pg_opfamily (oid UINTEGER, opfmethod UINTEGER, opfname VARCHAR, opfnamespace UINTEGER, opfowner UINTEGER);

-- The system catalogs' own oids (classoid in pg_description, 'pg_class'::regclass).
CREATE TABLE tag_system_relations (relname VARCHAR, oid UINTEGER);
INSERT INTO tag_system_relations VALUES ('pg_class', 1259), ('pg_attribute', 1249), ('pg_type', 1247), ('pg_proc', 1255),
    ('pg_namespace', 2615), ('pg_constraint', 2606), ('pg_index', 2610), ('pg_database', 1262), ('pg_description', 2609),
    ('pg_trigger', 2620), ('pg_rewrite', 2618), ('pg_am', 2601), ('pg_authid', 1260), ('pg_roles', 1260);

CREATE VIEW pg_tables AS
    SELECT n.nspname AS schemaname, c.relname AS tablename, 'tag-server' AS tableowner, NULL::VARCHAR AS tablespace,
        c.relhasindex AS hasindexes, c.relhasrules AS hasrules, c.relhastriggers AS hastriggers, c.relrowsecurity AS rowsecurity
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r';
CREATE VIEW pg_views AS
    SELECT n.nspname AS schemaname, c.relname AS viewname, 'tag-server' AS viewowner, NULL::VARCHAR AS definition
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'v';
CREATE VIEW pg_indexes AS
    SELECT n.nspname AS schemaname, t.relname AS tablename, i.relname AS indexname, NULL::VARCHAR AS tablespace,
        d.definition AS indexdef
    FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace LEFT JOIN tag_definitions d ON d.oid = i.oid;
CREATE VIEW pg_stat_user_tables AS
    SELECT c.oid AS relid, n.nspname AS schemaname, c.relname, CAST(c.reltuples AS BIGINT) AS n_live_tup, 0::BIGINT AS n_dead_tup,
        0::BIGINT AS seq_scan, 0::BIGINT AS idx_scan
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r';
CREATE VIEW pg_stat_all_tables AS SELECT * FROM pg_stat_user_tables;
CREATE VIEW pg_statio_user_tables AS SELECT relid, schemaname, relname FROM pg_stat_user_tables;

-- The functions drivers call, over the tables above.
CREATE MACRO current_database() AS (SELECT datname FROM pg_database LIMIT 1);
CREATE MACRO current_schema() AS 'main';
CREATE MACRO current_schemas(implicit) AS CASE WHEN implicit THEN ['pg_catalog', 'main'] ELSE ['main'] END;
CREATE MACRO current_user() AS 'tag-server';
CREATE MACRO session_user() AS 'tag-server';
CREATE MACRO format_type(type_oid, typemod) AS
    CASE
        WHEN type_oid IS NULL THEN NULL
        WHEN type_oid = 1700 AND typemod >= 4 THEN 'numeric(' || ((typemod - 4) >> 16) || ',' || ((typemod - 4) & 65535) || ')'
        WHEN type_oid IN (1043, 1042) AND typemod >= 4 THEN (SELECT display FROM tag_type_display WHERE oid = type_oid) || '(' || (typemod - 4) || ')'
        ELSE coalesce((SELECT display FROM tag_type_display WHERE oid = type_oid), '???')
    END;
CREATE MACRO pg_get_expr(expr, relation) AS CAST(NULL AS VARCHAR), (expr, relation, pretty) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_constraintdef(constraint_oid) AS (SELECT definition FROM tag_definitions WHERE oid = constraint_oid),
    (constraint_oid, pretty) AS (SELECT definition FROM tag_definitions WHERE oid = constraint_oid);
CREATE MACRO pg_get_indexdef(index_oid) AS (SELECT definition FROM tag_definitions WHERE oid = index_oid),
    (index_oid, col, pretty) AS CASE WHEN col = 0 THEN (SELECT definition FROM tag_definitions WHERE oid = index_oid)
        ELSE (SELECT a.attname FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[col]
              WHERE x.indexrelid = index_oid) END;
CREATE MACRO pg_get_userbyid(role_oid) AS 'tag-server';
CREATE MACRO pg_table_is_visible(relation) AS true;
CREATE MACRO pg_type_is_visible(type_oid) AS true;
CREATE MACRO pg_function_is_visible(function_oid) AS true;
CREATE MACRO pg_get_viewdef(relation) AS CAST(NULL AS VARCHAR), (relation, pretty) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_partkeydef(relation) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_triggerdef(trigger_oid) AS CAST(NULL AS VARCHAR), (trigger_oid, pretty) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_statisticsobjdef_columns(statistics_oid) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_serial_sequence(relation, col) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_function_result(function_oid) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_get_function_arguments(function_oid) AS CAST(NULL AS VARCHAR);
CREATE MACRO pg_encoding_to_char(encoding) AS 'UTF8';
CREATE MACRO pg_relation_size(relation) AS 0::BIGINT, (relation, fork) AS 0::BIGINT;
CREATE MACRO pg_total_relation_size(relation) AS 0::BIGINT;
CREATE MACRO pg_table_size(relation) AS 0::BIGINT;
CREATE MACRO pg_indexes_size(relation) AS 0::BIGINT;
CREATE MACRO pg_backend_pid() AS 0;
CREATE MACRO pg_is_in_recovery() AS false;
CREATE MACRO to_regtype(type_name) AS (SELECT oid FROM pg_type WHERE typname = type_name);
CREATE MACRO to_regclass(relation_name) AS (SELECT oid FROM pg_class WHERE relname = relation_name);
CREATE MACRO obj_description(object_oid) AS (SELECT description FROM pg_description WHERE objoid = object_oid AND objsubid = 0 LIMIT 1),
    (object_oid, catalog_name) AS (SELECT description FROM pg_description WHERE objoid = object_oid AND objsubid = 0 LIMIT 1);
CREATE MACRO col_description(relation, column_number) AS
    (SELECT description FROM pg_description WHERE objoid = relation AND objsubid = column_number);
CREATE MACRO shobj_description(object_oid, catalog_name) AS CAST(NULL AS VARCHAR);
-- Everything may be read, nothing written.
CREATE MACRO tag_reads(privilege) AS regexp_matches(upper(privilege), 'SELECT|USAGE|CONNECT|REFERENCES|TEMP');
CREATE MACRO has_table_privilege(relation, privilege) AS tag_reads(privilege), (role_name, relation, privilege) AS tag_reads(privilege);
CREATE MACRO has_schema_privilege(schema_name, privilege) AS tag_reads(privilege), (role_name, schema_name, privilege) AS tag_reads(privilege);
CREATE MACRO has_database_privilege(database_name, privilege) AS tag_reads(privilege), (role_name, database_name, privilege) AS tag_reads(privilege);
CREATE MACRO has_column_privilege(relation, col, privilege) AS tag_reads(privilege), (role_name, relation, col, privilege) AS tag_reads(privilege);
CREATE MACRO has_any_column_privilege(relation, privilege) AS tag_reads(privilege), (role_name, relation, privilege) AS tag_reads(privilege);
CREATE MACRO pg_has_role(role_name, privilege) AS false, (user_name, role_name, privilege) AS false;
CREATE MACRO array_lower(list, dimension) AS CASE WHEN len(list) > 0 THEN 1 END;
CREATE MACRO array_upper(list, dimension) AS CASE WHEN len(list) > 0 THEN len(list) END;
CREATE MACRO current_setting(setting_name) AS (SELECT setting FROM pg_settings WHERE lower(name) = lower(setting_name)),
    (setting_name, missing_ok) AS (SELECT setting FROM pg_settings WHERE lower(name) = lower(setting_name));
-- Settings are the client's own business here: set_config answers the value it
-- was given and changes nothing (asyncpg turns `jit` off around its type
-- introspection).
CREATE MACRO set_config(setting_name, new_value, is_local) AS new_value;
CREATE MACRO pg_relation_is_publishable(relation) AS false;
-- No partitions: a table is its own only ancestor and root.
CREATE MACRO pg_partition_ancestors(relation) AS CAST(relation AS UINTEGER);
CREATE MACRO pg_partition_root(relation) AS CAST(relation AS UINTEGER);
-- As a table (`WITH ORDINALITY AS a(relid, depth)`: DuckDB adds no ordinality
-- column to a table macro, so the depth is its own).
CREATE MACRO pg_partition_ancestors(relation) AS TABLE SELECT CAST(relation AS UINTEGER) AS relid, 1 AS depth;
-- A list's elements with their positions, as rows (pgJDBC's getPrimaryKeys).
CREATE MACRO information_schema__pg_expandarray(list) AS unnest(list_transform(generate_series(1, len(list)), i -> {'x': list[i], 'n': i}));
-- A regclass (pg/compat.rs rewrites the casts): a relation's oid from its name
-- (optionally schema-qualified or quoted) or its number, and its name.
CREATE MACRO tag_regclass(relation) AS
    CASE WHEN regexp_full_match(relation, '[0-9]+') THEN CAST(relation AS UINTEGER)
        ELSE coalesce(
            (SELECT oid FROM pg_class WHERE relname = regexp_replace(relation, '^(.*\.)?"?([^"]*)"?$', '\2')),
            (SELECT oid FROM tag_system_relations WHERE relname = regexp_replace(relation, '^(.*\.)?"?([^"]*)"?$', '\2'))) END;
CREATE MACRO tag_regclass_name(relation) AS coalesce(
    (SELECT relname FROM pg_class WHERE oid = relation), (SELECT relname FROM tag_system_relations WHERE oid = relation), CAST(relation AS VARCHAR));

-- information_schema, as views over the tables above (compat.rs turns
-- `information_schema.tables` into `information_schema_tables`).
CREATE VIEW information_schema_schemata AS
    SELECT current_database() AS catalog_name, nspname AS schema_name, 'tag-server' AS schema_owner,
        NULL::VARCHAR AS default_character_set_catalog, NULL::VARCHAR AS default_character_set_schema,
        NULL::VARCHAR AS default_character_set_name, NULL::VARCHAR AS sql_path
    FROM pg_namespace;
CREATE VIEW information_schema_tables AS
    SELECT current_database() AS table_catalog, n.nspname AS table_schema, c.relname AS table_name,
        CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'BASE TABLE' END AS table_type,
        NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation,
        NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema, NULL::VARCHAR AS user_defined_type_name,
        'NO' AS is_insertable_into, 'NO' AS is_typed, NULL::VARCHAR AS commit_action
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v');
CREATE VIEW information_schema_views AS
    SELECT table_catalog, table_schema, table_name, NULL::VARCHAR AS view_definition, 'NONE' AS check_option,
        'NO' AS is_updatable, 'NO' AS is_insertable_into, 'NO' AS is_trigger_updatable, 'NO' AS is_trigger_deletable,
        'NO' AS is_trigger_insertable_into
    FROM information_schema_tables WHERE table_type = 'VIEW';
CREATE VIEW information_schema_columns AS
    SELECT current_database() AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, a.attname AS column_name,
        a.attnum::INTEGER AS ordinal_position, NULL::VARCHAR AS column_default,
        CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable,
        CASE WHEN t.typcategory = 'A' THEN 'ARRAY' WHEN t.oid = 1700 THEN 'numeric' ELSE d.display END AS data_type,
        NULL::INTEGER AS character_maximum_length, NULL::INTEGER AS character_octet_length,
        CASE t.oid WHEN 21 THEN 16 WHEN 23 THEN 32 WHEN 20 THEN 64 WHEN 700 THEN 24 WHEN 701 THEN 53
            WHEN 1700 THEN CASE WHEN a.atttypmod >= 4 THEN (a.atttypmod - 4) >> 16 END END AS numeric_precision,
        CASE WHEN t.oid IN (21, 23, 20, 1700) THEN 10 WHEN t.oid IN (700, 701) THEN 2 END AS numeric_precision_radix,
        CASE WHEN t.oid IN (21, 23, 20) THEN 0 WHEN t.oid = 1700 AND a.atttypmod >= 4 THEN (a.atttypmod - 4) & 65535 END AS numeric_scale,
        CASE WHEN t.oid IN (1082, 1083, 1114, 1184) THEN 6 END AS datetime_precision,
        NULL::VARCHAR AS interval_type, NULL::INTEGER AS interval_precision,
        NULL::VARCHAR AS character_set_catalog, NULL::VARCHAR AS character_set_schema, NULL::VARCHAR AS character_set_name,
        NULL::VARCHAR AS collation_catalog, NULL::VARCHAR AS collation_schema, NULL::VARCHAR AS collation_name,
        NULL::VARCHAR AS domain_catalog, NULL::VARCHAR AS domain_schema, NULL::VARCHAR AS domain_name,
        current_database() AS udt_catalog, 'pg_catalog' AS udt_schema, t.typname AS udt_name,
        NULL::VARCHAR AS scope_catalog, NULL::VARCHAR AS scope_schema, NULL::VARCHAR AS scope_name,
        NULL::INTEGER AS maximum_cardinality, a.attnum::VARCHAR AS dtd_identifier, 'NO' AS is_self_referencing,
        'NO' AS is_identity, NULL::VARCHAR AS identity_generation, NULL::VARCHAR AS identity_start,
        NULL::VARCHAR AS identity_increment, NULL::VARCHAR AS identity_maximum, NULL::VARCHAR AS identity_minimum,
        'NO' AS identity_cycle, 'NEVER' AS is_generated, NULL::VARCHAR AS generation_expression, 'NO' AS is_updatable
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid JOIN tag_type_display d ON d.oid = t.oid
    WHERE c.relkind IN ('r', 'v') AND a.attnum > 0;
CREATE VIEW information_schema_table_constraints AS
    SELECT current_database() AS constraint_catalog, 'main' AS constraint_schema, k.conname AS constraint_name,
        current_database() AS table_catalog, 'main' AS table_schema, c.relname AS table_name,
        CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'f' THEN 'FOREIGN KEY' WHEN 'u' THEN 'UNIQUE' ELSE 'CHECK' END AS constraint_type,
        'NO' AS is_deferrable, 'NO' AS initially_deferred, 'YES' AS enforced, NULL::VARCHAR AS nulls_distinct
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid;
CREATE VIEW information_schema_key_column_usage AS
    SELECT current_database() AS constraint_catalog, 'main' AS constraint_schema, k.conname AS constraint_name,
        current_database() AS table_catalog, 'main' AS table_schema, c.relname AS table_name, a.attname AS column_name,
        1 AS ordinal_position, CASE WHEN k.contype = 'f' THEN 1 END AS position_in_unique_constraint
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
    WHERE k.contype IN ('p', 'f', 'u');
CREATE VIEW information_schema_referential_constraints AS
    SELECT current_database() AS constraint_catalog, 'main' AS constraint_schema, k.conname AS constraint_name,
        current_database() AS unique_constraint_catalog, 'main' AS unique_constraint_schema, p.conname AS unique_constraint_name,
        'NONE' AS match_option, 'NO ACTION' AS update_rule, 'NO ACTION' AS delete_rule
    FROM pg_constraint k LEFT JOIN pg_constraint p ON p.conrelid = k.confrelid AND p.contype = 'p' WHERE k.contype = 'f';
CREATE VIEW information_schema_constraint_column_usage AS
    SELECT current_database() AS table_catalog, 'main' AS table_schema, c.relname AS table_name, a.attname AS column_name,
        current_database() AS constraint_catalog, 'main' AS constraint_schema, k.conname AS constraint_name
    FROM pg_constraint k JOIN pg_class c ON c.oid = CASE WHEN k.contype = 'f' THEN k.confrelid ELSE k.conrelid END
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = CASE WHEN k.contype = 'f' THEN k.confkey[1] ELSE k.conkey[1] END;
CREATE VIEW information_schema_routines AS
    SELECT NULL::VARCHAR AS specific_catalog, NULL::VARCHAR AS specific_schema, NULL::VARCHAR AS specific_name,
        NULL::VARCHAR AS routine_catalog, NULL::VARCHAR AS routine_schema, NULL::VARCHAR AS routine_name,
        NULL::VARCHAR AS routine_type, NULL::VARCHAR AS data_type WHERE false;
