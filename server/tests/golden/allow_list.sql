-- The read-only allow-list (sql/safety.rs and sql/mod.rs): what passes, and every
-- rule that refuses, with its reason. One case per line; a line starting with "| "
-- continues the case above it on a new line.

-- Plain reads pass unchanged.
SELECT title FROM movies WHERE year > 1990 ORDER BY revenue DESC LIMIT 5
WITH t AS (SELECT 1 AS x) SELECT x FROM t
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r
SELECT * EXCLUDE (runtime) FROM movies
SELECT * REPLACE (upper(title) AS title) FROM movies
SELECT genre, count(*) FROM movies GROUP BY ALL
FROM movies SELECT title
VALUES (1), (2)
TABLE movies
SELECT title FROM movies UNION SELECT title FROM movies EXCEPT SELECT 'x'
SELECT list_transform([1, 2, 3], x -> x * 2)
SELECT {'a': 1, 'b': 'x'} AS s
SELECT title, row_number() OVER (PARTITION BY year ORDER BY title) FROM movies QUALIFY row_number() OVER (PARTITION BY year ORDER BY title) = 1
SELECT m.title FROM movies m JOIN reviews r USING (movie_id) WHERE r.rating > 3
SELECT (SELECT max(year) FROM movies) AS latest
SELECT 1 -- ; DROP TABLE movies
SELECT 1 -- a comment ends at the line's end
| ; DROP TABLE movies
SELECT 1 /* ; DROP TABLE movies */
SELECT 1;

-- Allowed table functions: generators and this database's own catalog.
SELECT * FROM range(10)
SELECT * FROM generate_series(1, 3)
SELECT unnest([1, 2, 3])
SELECT * FROM unnest([1, 2])
SELECT table_name FROM duckdb_tables()
SELECT column_name FROM duckdb_columns() WHERE table_name = 'movies'
SELECT view_name FROM duckdb_views()

-- Empty, unparseable, several statements.
   ;  
SELEC * FRM movies
SELECT 1; SELECT 2
SELECT 1; DROP TABLE movies
SELECT 1 /* ; */ ; DELETE FROM movies

-- Statements that are not queries.
DROP TABLE movies
DELETE FROM movies
INSERT INTO movies VALUES (1)
UPDATE movies SET year = 1
CREATE TABLE x AS SELECT 1
CREATE VIEW v AS SELECT * FROM movies
CREATE MACRO m(x) AS x + 1
ALTER TABLE movies ADD COLUMN x INTEGER
COPY movies TO '/tmp/x.csv'
COPY (SELECT * FROM movies) TO '/tmp/x.csv' (FORMAT csv)
EXPORT DATABASE '/tmp/out'
ATTACH '/tmp/x.db' AS x
DETACH memory
USE memory
INSTALL httpfs
LOAD httpfs
PRAGMA database_list
SET threads = 1
RESET threads
CALL pragma_version()
CHECKPOINT
VACUUM
BEGIN TRANSACTION
EXPLAIN SELECT 1
DESCRIBE movies

-- Data-modifying bodies and SELECT INTO.
WITH d AS (DELETE FROM movies RETURNING *) SELECT * FROM d
WITH i AS (INSERT INTO movies VALUES (1) RETURNING *) SELECT * FROM i
SELECT * INTO copy_of_movies FROM movies

-- Files and URLs in FROM (replacement scans).
SELECT * FROM 'data.csv'
SELECT * FROM '/etc/passwd'
SELECT * FROM "/etc/passwd"
SELECT * FROM "data.parquet"
SELECT * FROM 'https://example.com/data.csv'
SELECT * FROM "s3://bucket/key.parquet"
SELECT * FROM movies, 'other.csv'
SELECT * FROM movies JOIN 'other.csv' o ON true

-- Table functions outside the list.
SELECT * FROM read_csv('/etc/passwd')
SELECT * FROM read_csv_auto('/etc/passwd')
SELECT * FROM read_parquet('x.parquet')
SELECT * FROM read_json('x.json')
SELECT * FROM read_text('/etc/passwd')
SELECT * FROM glob('/*')
SELECT * FROM query('DROP TABLE movies')
SELECT * FROM query_table('movies')
SELECT * FROM sqlite_scan('/tmp/x.db', 't')
SELECT * FROM postgres_scan('dbname=x', 'public', 't')
SELECT * FROM duckdb_secrets()
SELECT * FROM duckdb_settings()
SELECT * FROM pragma_table_info('movies')
SELECT * FROM parquet_metadata('x.parquet')
SELECT * FROM sniff_csv('x.csv')
SELECT * FROM (SELECT * FROM read_csv('/etc/passwd'))
WITH t AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM t

-- Scalar functions that read outside the dataset or run SQL text.
SELECT read_text('/etc/passwd')
SELECT (SELECT content FROM read_blob('/etc/passwd'))
SELECT getenv('HOME')
SELECT glob('x')
SELECT query('SELECT 1')
SELECT load_extension('x')
SELECT which_secret('s3://x', 's3')
SELECT checkpoint()
SELECT force_checkpoint()
SELECT postgres_query('db', 'SELECT 1')
SELECT mysql_query('db', 'SELECT 1')
SELECT postgres_attach('dbname=x')
SELECT title FROM movies WHERE title = getenv('USER')
SELECT [getenv('HOME')]
SELECT list_transform([1], x -> getenv('HOME'))
