//! The read-only allow-list under a fuzzer. SQL is generated from a grammar that
//! mixes ordinary queries with DuckDB's own syntax and its dangerous corners (table
//! functions, string table references, FROM-first, COPY, ATTACH, PRAGMA, SET,
//! macros, lambdas, nested CTEs, comments, several statements). The invariant:
//! every statement `sql::check` accepts, run (as rewritten) on a scratch DuckDB that
//! holds a copy of the `movies` dataset and has external access *enabled* (so the
//! checker is the only wall), changes nothing in the database, and neither reads
//! nor writes any file of a watched folder outside the dataset (inotify sees every
//! open, read, write and create there; canary files carry a token that must not
//! appear in any result).
//!
//! Budget: `TAG_FUZZ_CASES` generated statements (default 2000, seconds); the long
//! run is `TAG_FUZZ_CASES=200000 cargo test -p tag-server --test allow_list_fuzz --
//! --nocapture`. The corpus `tests/fuzz/accepted.sql` (statements the checker
//! accepted, so the ones the invariant is about) is replayed first on every run;
//! `TAG_FUZZ_SAVE=1` adds to it the accepted statements a run finds that have a
//! feature (a word or a punctuation mark) no corpus statement has.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Mutex,
};

use duckdb::Connection;
use inotify::{Inotify, WatchMask};
use proptest::{prelude::*, test_runner::TestRunner};
use tag_server::sql;

const TOKEN: &str = "CANARY7f3e9a";

/// The scratch database, the watched folder and its watcher.
struct Scratch {
    conn: Connection,
    outside: PathBuf,
    watcher: Inotify,
    baseline: String,
}

impl Scratch {
    fn new(outside: &Path) -> Scratch {
        let datasets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/movies");
        let setup = Connection::open_in_memory().unwrap();
        let canary_db = outside.join("canary.duckdb");
        std::fs::write(outside.join("canary.csv"), format!("secret\n{TOKEN}\n")).unwrap();
        setup
            .execute_batch(&format!(
                "COPY (SELECT '{TOKEN}' AS secret) TO '{p}' (FORMAT parquet);
                 ATTACH '{db}' AS c; CREATE TABLE c.t AS SELECT '{TOKEN}' AS secret; DETACH c;",
                p = outside.join("canary.parquet").display(),
                db = canary_db.display(),
            ))
            .unwrap();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE movies AS SELECT * FROM read_csv('{m}', header = true);
             CREATE TABLE reviews AS SELECT * FROM read_csv('{r}', header = true);
             CREATE MACRO llm_filter(q, t, f) AS length(t) % 2 = 0;
             CREATE MACRO llm_map(q, t, f) AS t || coalesce(f[1], '');
             CREATE MACRO llm_score(q, t, f) AS 0.5;
             CREATE MACRO llm_knowledge(q, t, f) AS t;
             CREATE MACRO llm_classify(q, t, l, f) AS l[1];
             CREATE MACRO llm_reduce(q, t, l, f) AS t || len(l);
             CREATE MACRO llm_rank(q, t, l, f) AS l;",
            m = datasets.join("movies.csv").display(),
            r = datasets.join("reviews.csv").display(),
        ))
        .unwrap();
        let watcher = Inotify::init().unwrap();
        let mask = WatchMask::OPEN | WatchMask::ACCESS | WatchMask::MODIFY | WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::ATTRIB;
        watcher.watches().add(outside, mask).unwrap();
        let mut scratch = Scratch { conn, outside: outside.to_path_buf(), watcher, baseline: String::new() };
        scratch.drain_events();
        scratch.baseline = scratch.state();
        scratch
    }

    /// Everything a statement could change: the catalog, settings, the current
    /// database and schema, and every table's contents.
    fn state(&self) -> String {
        let query = "SELECT
            (SELECT string_agg(database_name || ':' || coalesce(path, ''), ',' ORDER BY database_name) FROM duckdb_databases()),
            (SELECT string_agg(schema_name || '.' || table_name, ',' ORDER BY 1) FROM duckdb_tables()),
            (SELECT string_agg(view_name, ',' ORDER BY 1) FROM duckdb_views() WHERE NOT internal),
            (SELECT string_agg(function_name || '/' || coalesce(macro_definition, ''), ',' ORDER BY 1) FROM duckdb_functions() WHERE NOT internal),
            (SELECT string_agg(name || '=' || coalesce(value, ''), ',' ORDER BY name) FROM duckdb_settings()),
            (SELECT string_agg(extension_name, ',' ORDER BY 1) FROM duckdb_extensions() WHERE loaded),
            current_database(), current_schema(),
            (SELECT count(*) || '/' || sum(hash(m)) FROM movies m),
            (SELECT count(*) || '/' || sum(hash(r)) FROM reviews r)";
        let row = self.conn.query_row(query, [], |row| {
            (0..10).map(|i| row.get::<_, Option<String>>(i).map(|v| v.unwrap_or_default())).collect::<Result<Vec<_>, _>>()
        });
        row.unwrap().join("\n")
    }

    fn drain_events(&mut self) -> Vec<String> {
        let mut buffer = [0u8; 4096];
        let mut seen = Vec::new();
        while let Ok(events) = self.watcher.read_events(&mut buffer) {
            let mut any = false;
            for event in events {
                any = true;
                seen.push(format!("{:?} {:?}", event.mask, event.name));
            }
            if !any {
                break;
            }
        }
        seen
    }

    /// Runs an accepted statement (interrupted after two seconds) and checks the
    /// invariant; `Err` says what broke.
    fn run(&mut self, executable: &str) -> Result<(), String> {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let interrupt = self.conn.interrupt_handle();
        let watchdog = std::thread::spawn(move || {
            if finished.recv_timeout(std::time::Duration::from_secs(2)).is_err() {
                interrupt.interrupt();
            }
        });
        let output = self.execute(executable);
        let _ = done.send(());
        let _ = watchdog.join();
        // Checked (and the events drained) even when the canary showed, so the next
        // case starts clean.
        let unchanged = self.unchanged();
        if output.contains(TOKEN) {
            return Err("a canary file's contents reached the result".into());
        }
        unchanged
    }

    /// The statement's result rows (at most 200) as text; errors are harmless.
    fn execute(&self, executable: &str) -> String {
        let mut output = String::new();
        if let Ok(mut statement) = self.conn.prepare(executable) {
            if let Ok(mut rows) = statement.query([]) {
                let columns = rows.as_ref().map(|s| s.column_count()).unwrap_or(0);
                let mut count = 0;
                while let Ok(Some(row)) = rows.next() {
                    for i in 0..columns {
                        if let Ok(value) = row.get::<_, duckdb::types::Value>(i) {
                            output.push_str(&format!("{value:?}"));
                        }
                    }
                    count += 1;
                    if count > 200 {
                        break;
                    }
                }
            }
        }
        output
    }

    /// No file event in the watched folder, the same folder listing, the same
    /// database state.
    fn unchanged(&mut self) -> Result<(), String> {
        let events = self.drain_events();
        if !events.is_empty() {
            return Err(format!("files outside the dataset were touched: {events:?}"));
        }
        let state = self.state();
        if state != self.baseline {
            let before = self.baseline.clone();
            self.baseline = state.clone();
            return Err(format!("the database changed:\nbefore: {before}\nafter: {state}"));
        }
        let files: BTreeSet<String> = std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        let expected: BTreeSet<String> = ["canary.csv", "canary.parquet", "canary.duckdb"].iter().map(|s| s.to_string()).collect();
        // The listing just made is this test's own read of the folder.
        self.drain_events();
        if files != expected {
            return Err(format!("the watched folder changed: {files:?}"));
        }
        Ok(())
    }
}

/// What a check of one input found.
enum Verdict {
    Refused,
    Harmless,
}

fn check(scratch: &Mutex<Scratch>, sql_text: &str) -> Result<Verdict, String> {
    let Ok(checked) = sql::check(sql_text, "q") else { return Ok(Verdict::Refused) };
    scratch.lock().unwrap().run(&checked.executable).map_err(|why| format!("{why}\naccepted: {sql_text}\nran: {}", checked.executable))?;
    Ok(Verdict::Harmless)
}

// The grammar. Paths point into the watched folder, whose name is substituted for
// `@` when a case runs, so the corpus does not depend on a temporary path.

fn column() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["title", "year", "genres", "movie_id", "m.title", "x", "secret", "content", "1"]).prop_map(String::from)
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..3000).prop_map(|n| n.to_string()),
        prop::sample::select(vec!["'a'", "NULL", "true", "'@/canary.csv'", "[1, 2]", "{'k': 1}", "'x'::VARCHAR", "DATE '2020-01-01'"]).prop_map(String::from),
    ]
}

fn ordinary_table() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "movies", "reviews", "movies m", "reviews r", "range(3) t(x)", "generate_series(1, 2)", "unnest([1, 2]) u(x)",
        "duckdb_tables()", "duckdb_columns()", "duckdb_views()", "(SELECT 1 AS x)", "(FROM movies SELECT title)",
        "(VALUES (1), (2)) v(x)", "main.movies", "memory.main.movies", "information_schema.tables",
    ])
    .prop_map(String::from)
}

/// Tables that reach outside the dataset (files, settings, other databases).
fn outside_table() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "duckdb_settings()", "duckdb_secrets()", "duckdb_extensions()", "duckdb_databases()", "pg_catalog.pg_class",
        "'@/canary.csv'", "\"@/canary.csv\"", "'@/canary.parquet'", "\"@/canary.duckdb\"", "'@'", "'@/canary.csv' AS f(secret)",
        "read_csv('@/canary.csv')", "read_csv_auto('@/canary.csv')", "read_parquet('@/canary.parquet')",
        "parquet_scan('@/canary.parquet')", "read_text('@/canary.csv')", "read_blob('@/canary.csv')",
        "read_json_auto('@/canary.csv')", "glob('@/*')", "sniff_csv('@/canary.csv')", "parquet_metadata('@/canary.parquet')",
        "query('SELECT * FROM ''@/canary.csv''')", "query_table('movies')", "sqlite_scan('@/canary.duckdb', 't')",
        "pragma_table_info('movies')", "movies AS OF now()", "c.t",
    ])
    .prop_map(String::from)
}

/// Mostly ordinary tables, sometimes one that reaches outside: a statement is then
/// likely to be accepted but for its one dangerous part.
fn table() -> impl Strategy<Value = String> {
    prop_oneof![3 => ordinary_table(), 1 => outside_table()]
}

fn ordinary_function() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "upper", "lower", "length", "abs", "coalesce", "md5", "hash", "typeof", "list_value", "string_agg", "count", "max",
        "unnest", "generate_series", "range", "regexp_matches", "random", "pg_typeof", "current_database", "version",
    ])
}

/// Scalar functions that reach outside the dataset or change the session.
fn outside_function() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "getenv", "read_text", "read_blob", "glob", "load_extension", "checkpoint", "force_checkpoint", "which_secret",
        "query", "sqlite_attach", "postgres_query", "parquet_metadata", "current_setting", "nextval", "setseed",
        "current_schemas", "txid_current",
    ])
}

/// Mostly ordinary functions, sometimes one that reaches outside.
fn function() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => ordinary_function(), 1 => outside_function()]
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![column(), literal(), Just("'@/canary.csv'".to_string())];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(vec!["+", "||", "=", "<", "AND", "OR", "LIKE"]), inner.clone())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (function(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("CASE WHEN {a} THEN {b} ELSE NULL END")),
            inner.clone().prop_map(|a| format!("list_transform([1, 2], x -> {a})")),
            (inner.clone(), table()).prop_map(|(a, t)| format!("(SELECT {a} FROM {t} LIMIT 1)")),
            table().prop_map(|t| format!("EXISTS (SELECT 1 FROM {t})")),
            inner.clone().prop_map(|a| format!("CAST({a} AS VARCHAR)")),
            prop::sample::select(vec![
                "llm_filter('{title} is a classic')", "llm_map('{title}')", "llm_score('{title} ({year})')",
                "llm_classify('{title}', 'a, b')", "llm_knowledge('capital of France')", "llm_map('x {title}', getenv('HOME'))",
                "llm_map('{secret}')", "llm_reduce('sum up', list(title))", "llm_rank('best', list(title))",
            ])
            .prop_map(String::from),
        ]
    })
}

fn select() -> impl Strategy<Value = String> {
    let projection = prop_oneof![2 => Just(vec!["*".to_string()]), 3 => prop::collection::vec(expr(), 1..3)];
    let query = (
        projection,
        table(),
        prop::option::of(expr()),
        prop::option::of(prop::sample::select(vec!["GROUP BY ALL", "ORDER BY 1", "LIMIT 3", "ORDER BY 1 DESC LIMIT 2", "QUALIFY true"])),
    )
        .prop_map(|(exprs, table, filter, tail)| {
            let mut sql = format!("SELECT {} FROM {table}", exprs.join(", "));
            if let Some(filter) = filter {
                sql.push_str(&format!(" WHERE {filter}"));
            }
            if let Some(tail) = tail {
                sql.push_str(&format!(" {tail}"));
            }
            sql
        });
    // The plainest reach outside, so a hole in the checker shows within seconds.
    let core = prop_oneof![
        4 => query,
        1 => outside_table().prop_map(|t| format!("SELECT * FROM {t}")),
        1 => outside_function().prop_map(|f| format!("SELECT {f}('@/canary.csv')")),
    ];
    core.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("WITH c AS ({a}) {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("WITH c AS ({a}), d AS (SELECT * FROM c) SELECT * FROM d, ({b}) e")),
            (inner.clone(), inner.clone(), prop::sample::select(vec!["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]))
                .prop_map(|(a, b, op)| format!("({a}) {op} ({b})")),
            (table(), expr()).prop_map(|(t, e)| format!("FROM {t} SELECT {e}")),
            inner.clone().prop_map(|a| format!("SELECT * FROM ({a}) s")),
            expr().prop_map(|e| format!("VALUES ({e})")),
            inner.prop_map(|a| format!("WITH d AS (DELETE FROM movies RETURNING *) {a}")),
        ]
    })
}

fn other_statement() -> impl Strategy<Value = String> {
    prop_oneof![
        select().prop_map(|s| format!("COPY ({s}) TO '@/out.csv'")),
        Just("COPY movies TO '@/out.parquet' (FORMAT parquet)".to_string()),
        Just("COPY movies FROM '@/canary.csv'".to_string()),
        Just("ATTACH '@/canary.duckdb' AS c".to_string()),
        Just("ATTACH '@/new.duckdb' AS n".to_string()),
        Just("ATTACH '@/canary.duckdb' AS c (READ_ONLY); SELECT * FROM c.t".to_string()),
        Just("DETACH memory".to_string()),
        Just("USE system".to_string()),
        Just("INSTALL httpfs".to_string()),
        Just("LOAD '@/canary.csv'".to_string()),
        Just("PRAGMA database_list".to_string()),
        Just("PRAGMA enable_profiling".to_string()),
        Just("SET enable_external_access = false".to_string()),
        Just("SET threads = 1".to_string()),
        Just("RESET threads".to_string()),
        Just("CALL pragma_version()".to_string()),
        Just("CHECKPOINT".to_string()),
        Just("EXPORT DATABASE '@/exp'".to_string()),
        Just("IMPORT DATABASE '@'".to_string()),
        Just("CREATE MACRO m(x) AS x + 1".to_string()),
        Just("CREATE OR REPLACE MACRO llm_map(q, t, f) AS getenv('HOME')".to_string()),
        select().prop_map(|s| format!("CREATE TABLE t AS {s}")),
        select().prop_map(|s| format!("CREATE VIEW v AS {s}")),
        Just("CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')".to_string()),
        Just("CREATE SEQUENCE s".to_string()),
        select().prop_map(|s| format!("INSERT INTO movies {s}")),
        Just("DELETE FROM movies".to_string()),
        Just("UPDATE movies SET year = 1".to_string()),
        Just("DROP TABLE movies".to_string()),
        Just("ALTER TABLE movies RENAME TO films".to_string()),
        Just("TRUNCATE movies".to_string()),
        select().prop_map(|s| format!("EXPLAIN {s}")),
        select().prop_map(|s| format!("EXPLAIN ANALYZE {s}")),
        select().prop_map(|s| format!("SUMMARIZE {s}")),
        Just("DESCRIBE movies".to_string()),
        Just("SELECT * INTO t FROM movies".to_string()),
        Just("PIVOT movies ON year USING count(*)".to_string()),
    ]
}

fn program() -> impl Strategy<Value = String> {
    let statement = prop_oneof![4 => select(), 1 => other_statement()];
    (
        statement.clone(),
        prop::option::of(statement),
        prop::sample::select(vec!["", " -- note", " /* ; */", "\n-- line\n", ";", " ; ", "/* a */ "]),
    )
        .prop_map(|(a, b, decoration)| match b {
            Some(b) => format!("{a}{decoration}; {b}"),
            None => format!("{a}{decoration}"),
        })
}

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/accepted.sql")
}

fn read_corpus() -> Vec<String> {
    std::fs::read_to_string(corpus_path())
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("--"))
        .map(|line| line.replace("\\n", "\n"))
        .collect()
}

/// A statement's features: its words (identifiers, keywords, function names) and
/// its punctuation. The corpus keeps a statement only when it has a feature no
/// statement before it had, so it stays small and varied.
fn features(sql_text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in sql_text.to_lowercase().replace("\\n", " ").chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() && !word.chars().all(|d| d.is_ascii_digit()) {
            out.insert(std::mem::take(&mut word));
        }
        word.clear();
        if !c.is_whitespace() && c != '\'' {
            out.insert(c.to_string());
        }
    }
    if !word.is_empty() && !word.chars().all(|d| d.is_ascii_digit()) {
        out.insert(word);
    }
    out
}

#[test]
fn statements_the_checker_accepts_change_nothing_and_touch_no_file_outside_the_dataset() {
    let outside = tempfile::tempdir().unwrap();
    let root = outside.path().to_string_lossy().to_string();
    let scratch = Mutex::new(Scratch::new(outside.path()));
    let with_paths = |sql_text: &str| sql_text.replace('@', &root);

    // The corpus first: every accepted statement found so far must stay harmless.
    let corpus = read_corpus();
    assert!(!corpus.is_empty(), "the corpus {} is missing", corpus_path().display());
    let mut known: BTreeSet<String> = corpus.iter().flat_map(|c| features(c)).collect();
    let mut accepted_corpus = 0;
    for case in &corpus {
        match check(&scratch, &with_paths(case)) {
            Ok(Verdict::Harmless) => accepted_corpus += 1,
            Ok(Verdict::Refused) => {}
            Err(why) => panic!("corpus case broke the invariant: {why}"),
        }
    }

    let cases: u32 = std::env::var("TAG_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let config = proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() };
    let mut runner = TestRunner::new(config);
    let found = Mutex::new(Vec::<String>::new());
    let (tried, accepted) = (Mutex::new(0u64), Mutex::new(0u64));
    let result = runner.run(&program(), |case| {
        *tried.lock().unwrap() += 1;
        match check(&scratch, &with_paths(&case)) {
            Ok(Verdict::Refused) => Ok(()),
            Ok(Verdict::Harmless) => {
                *accepted.lock().unwrap() += 1;
                found.lock().unwrap().push(case);
                Ok(())
            }
            Err(why) => Err(TestCaseError::fail(why)),
        }
    });
    let (tried, accepted) = (*tried.lock().unwrap(), *accepted.lock().unwrap());
    eprintln!(
        "allow-list fuzz: corpus {} cases ({accepted_corpus} accepted); generated {tried} statements, {accepted} accepted and harmless",
        corpus.len()
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }

    if std::env::var("TAG_FUZZ_SAVE").as_deref() == Ok("1") {
        let mut new = Vec::new();
        for case in found.into_inner().unwrap() {
            let features = features(&case);
            if !features.is_subset(&known) {
                known.extend(features);
                new.push(case.replace('\n', "\\n"));
            }
        }
        let mut text = std::fs::read_to_string(corpus_path()).unwrap_or_default();
        for case in &new {
            text.push_str(case);
            text.push('\n');
        }
        std::fs::write(corpus_path(), text).unwrap();
        eprintln!("allow-list fuzz: {} new accepted statements saved to {}", new.len(), corpus_path().display());
    }
}
