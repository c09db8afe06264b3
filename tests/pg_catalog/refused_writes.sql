DROP TABLE pg_class;
CREATE TABLE pg_copy AS SELECT * FROM pg_class;
SELECT relname FROM pg_class, read_csv('/etc/passwd');
SELECT count(*) AS tables FROM pg_class WHERE relkind = 'r';
