"""Python's PostgreSQL drivers against tag-server's wire endpoint: psycopg 3
(parameters, binary results, a server-side cursor read with fetchmany, notices,
errors with SQLSTATEs), asyncpg (the extended protocol with binary results,
prepared statements, a portal read in slices), and SQLAlchemy 2 with pandas
(a text query with a bound parameter, read_sql, reflection of tables, columns,
keys and comments). Prints what it saw as one JSON
object for tests/tests/pg.rs to check; it asserts nothing itself.

    python pg_drivers.py PORT QUESTION
"""

import asyncio
import datetime
import decimal
import json
import sys

import asyncpg
import pandas
import psycopg
import sqlalchemy

port, question = int(sys.argv[1]), sys.argv[2]
dsn = f"host=127.0.0.1 port={port} dbname=movies user=analyst sslmode=disable"
seen = {}

with psycopg.connect(dsn, autocommit=True) as conn:
    notices = []
    conn.add_notice_handler(lambda d: notices.append(f"{d.severity}: {d.message_primary}"))
    cur = conn.execute(
        "SELECT title, year FROM movies WHERE director = %s AND year > %s ORDER BY year LIMIT %s",
        ("Christopher Nolan", 2000, 2),
    )
    seen["psycopg_params"] = {"rows": cur.fetchall(), "types": [c.type_code for c in cur.description]}
    cur = conn.execute("SELECT title, year, box_office_usd_millions FROM movies ORDER BY year LIMIT 1", binary=True)
    seen["psycopg_binary"] = [list(map(str, r)) for r in cur.fetchall()]
    # A value is a value: the quote and the statement after it stay in the string.
    cur = conn.execute("SELECT count(*) FROM movies WHERE title = %s", ("x'; DROP TABLE movies; --",))
    seen["psycopg_injection"] = cur.fetchone()[0]
    # Lists as binary array parameters (%b), integers and text.
    cur = conn.execute("SELECT CAST(list_sum(%b) AS BIGINT) AS n, len(%b) AS t", ([1, 2, 300000], ["a", "it's"]))
    seen["psycopg_arrays"] = list(cur.fetchone())
    with conn.transaction():
        with conn.cursor(name="big") as big:
            big.execute("SELECT a.review_id FROM reviews a, reviews b LIMIT %s", (2500,))
            slices = []
            while rows := big.fetchmany(1000):
                slices.append(len(rows))
            seen["psycopg_server_cursor"] = slices
    try:
        conn.execute("DROP TABLE movies")
        seen["psycopg_drop"] = "ran"
    except psycopg.Error as e:
        seen["psycopg_drop"] = e.sqlstate
    seen["psycopg_after_error"] = conn.execute("SELECT count(*) FROM movies").fetchone()[0]
    types = (
        "SELECT TIMESTAMP '2020-01-02 03:04:05' AS ts, TIMESTAMPTZ '2020-01-02 03:04:05+00' AS tz, INTERVAL 90 MINUTE AS iv, "
        "[1, 2, 3] AS l, ['a', 'b'] AS tl, 1.5::DECIMAL(10,2) AS d, TIME '01:02:03' AS t, 42::TINYINT AS ti"
    )
    for binary in (False, True):
        row = conn.execute(types, binary=binary).fetchone()
        seen[f"psycopg_types_{'binary' if binary else 'text'}"] = [repr(v) for v in row]
    cur = conn.execute("SELECT * FROM ask(%s)", (question,))
    seen["psycopg_ask"] = {"rows": [list(map(str, r)) for r in cur.fetchall()], "notices": notices}


async def with_asyncpg():
    conn = await asyncpg.connect(f"postgresql://analyst@127.0.0.1:{port}/movies")
    rows = await conn.fetch(
        "SELECT title, year, box_office_usd_millions FROM movies WHERE year BETWEEN $1 AND $2 ORDER BY year, title LIMIT $3",
        2001, 2003, 2,
    )
    seen["asyncpg_fetch"] = [[r["title"], r["year"], float(r["box_office_usd_millions"])] for r in rows]
    statement = await conn.prepare("SELECT $1::date AS d, $2::int + 1 AS n, $3::text AS t, $4::bool AS b, $5::float8 AS f, $6::numeric AS m")
    seen["asyncpg_columns"] = [[a.name, a.type.name] for a in statement.get_attributes()]
    seen["asyncpg_parameters"] = [t.name for t in statement.get_parameters()]
    row = await statement.fetchrow(datetime.date(2020, 2, 29), 41, "it's", True, 0.5, decimal.Decimal("12.25"))
    seen["asyncpg_roundtrip"] = [row["d"].isoformat(), row["n"], row["t"], row["b"], row["f"], str(row["m"])]
    async with conn.transaction():
        sizes = []
        cursor = await conn.cursor("SELECT a.review_id FROM reviews a, reviews b LIMIT 2500")
        while batch := await cursor.fetch(1000):
            sizes.append(len(batch))
        seen["asyncpg_portal"] = sizes
    row = await conn.fetchrow("SELECT TIMESTAMPTZ '2020-01-02 03:04:05+00' AS tz, 1.5::DECIMAL(10,2) AS d, ['a', 'b'] AS tl, 42::TINYINT AS ti")
    seen["asyncpg_types"] = [repr(v) for v in row]
    # Arrays of integers, booleans, floats and dates: asyncpg looks their types up
    # with its introspection query (over the catalog) before it decodes them.
    row = await conn.fetchrow("SELECT [1, 2, 3] AS i, [2::BIGINT] AS l, [true] AS b, [1.5::DOUBLE] AS f, [DATE '2020-01-01'] AS d")
    seen["asyncpg_arrays"] = [repr(v) for v in row]
    try:
        await conn.fetch("SELECT * FROM no_such_table WHERE x = $1", 1)
    except asyncpg.PostgresError as e:
        seen["asyncpg_error"] = e.sqlstate
    await conn.close()
    seen["asyncpg_closed"] = conn.is_closed()


asyncio.run(asyncio.wait_for(with_asyncpg(), 60))

engine = sqlalchemy.create_engine(f"postgresql+psycopg://analyst@127.0.0.1:{port}/movies")
with engine.connect() as conn:
    query = sqlalchemy.text("SELECT count(*) FROM movies WHERE year > :year")
    seen["sqlalchemy_count"] = conn.execute(query, {"year": 2000}).scalar()
    frame = pandas.read_sql(sqlalchemy.text("SELECT title, year FROM movies ORDER BY year LIMIT 2"), conn)
    seen["pandas"] = {"columns": list(frame.columns), "rows": frame.values.tolist(), "dtypes": [str(t) for t in frame.dtypes]}
inspector = sqlalchemy.inspect(engine)
seen["sqlalchemy_tables"] = sorted(inspector.get_table_names())
seen["sqlalchemy_columns"] = [[c["name"], str(c["type"]), c["nullable"], c["comment"]] for c in inspector.get_columns("reviews")]
seen["sqlalchemy_primary_key"] = inspector.get_pk_constraint("reviews")["constrained_columns"]
seen["sqlalchemy_foreign_keys"] = [[k["constrained_columns"], k["referred_table"], k["referred_columns"]] for k in inspector.get_foreign_keys("reviews")]
seen["sqlalchemy_comment"] = inspector.get_table_comment("reviews")["text"]
metadata = sqlalchemy.MetaData()
metadata.reflect(engine)
seen["sqlalchemy_reflected"] = {name: len(table.columns) for name, table in metadata.tables.items()}
engine.dispose()
print(json.dumps(seen, default=str))
