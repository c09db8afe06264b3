// pgJDBC (Debian's libpostgresql-jdbc-java) against tag-server's wire endpoint: a
// prepared statement with typed parameters and its result's metadata, the
// server's product name, DatabaseMetaData's tables, columns, keys and indexes
// (what BI tools such as Metabase and DBeaver sync from), and
// Statement.cancel() from another thread on a query
// whose LLM operator is slow. Prints what it saw, one fact per line, for
// tests/tests/pg.rs to check.
//
//     java -cp postgresql.jar:. Jdbc PORT
import java.sql.*;

public class Jdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/movies?user=analyst&sslmode=disable";
        try (Connection c = DriverManager.getConnection(url)) {
            DatabaseMetaData meta = c.getMetaData();
            System.out.println("product " + meta.getDatabaseProductName());
            try (ResultSet r = meta.getSchemas()) {
                while (r.next()) System.out.println("schema " + r.getString("TABLE_SCHEM"));
            }
            try (ResultSet r = meta.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (r.next()) System.out.println("table " + r.getString("TABLE_SCHEM") + "." + r.getString("TABLE_NAME") + " " + r.getString("TABLE_TYPE") + " " + r.getString("REMARKS"));
            }
            try (ResultSet r = meta.getColumns(null, "main", "movies", "%")) {
                while (r.next()) System.out.println("column " + r.getString("COLUMN_NAME") + " " + r.getInt("DATA_TYPE") + " " + r.getString("TYPE_NAME") + " " + r.getInt("ORDINAL_POSITION") + " " + r.getString("IS_NULLABLE") + " " + r.getString("REMARKS"));
            }
            try (ResultSet r = meta.getPrimaryKeys(null, "main", "movies")) {
                while (r.next()) System.out.println("primary " + r.getString("COLUMN_NAME") + " " + r.getInt("KEY_SEQ") + " " + r.getString("PK_NAME"));
            }
            try (ResultSet r = meta.getImportedKeys(null, "main", "reviews")) {
                while (r.next()) System.out.println("imported " + r.getString("FKCOLUMN_NAME") + " -> " + r.getString("PKTABLE_NAME") + "." + r.getString("PKCOLUMN_NAME") + " " + r.getString("FK_NAME"));
            }
            try (ResultSet r = meta.getIndexInfo(null, "main", "reviews", false, true)) {
                while (r.next()) System.out.println("index " + r.getString("INDEX_NAME") + " " + r.getString("COLUMN_NAME") + " unique=" + !r.getBoolean("NON_UNIQUE"));
            }
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT title, year FROM movies WHERE year > ? AND director = ? ORDER BY year LIMIT ?")) {
                p.setInt(1, 2000);
                p.setString(2, "Christopher Nolan");
                p.setInt(3, 2);
                try (ResultSet r = p.executeQuery()) {
                    ResultSetMetaData m = r.getMetaData();
                    System.out.println("columns " + m.getColumnName(1) + ":" + m.getColumnTypeName(1) + " "
                            + m.getColumnName(2) + ":" + m.getColumnTypeName(2));
                    while (r.next()) {
                        System.out.println("row " + r.getString(1) + "|" + r.getInt(2));
                    }
                }
            }
            try (Statement slow = c.createStatement()) {
                Thread canceller = new Thread(() -> {
                    try {
                        Thread.sleep(2000);
                        slow.cancel();
                    } catch (Exception e) {
                        System.out.println("cancel failed " + e);
                    }
                });
                canceller.start();
                long started = System.nanoTime();
                try {
                    slow.executeQuery("SELECT count(*) FROM reviews WHERE movie_id = 2 AND llm_filter('{review_text} is enthusiastic')");
                    System.out.println("slow finished");
                } catch (SQLException e) {
                    long ms = (System.nanoTime() - started) / 1_000_000;
                    System.out.println("cancelled " + e.getSQLState() + " after " + ms + " ms");
                }
                canceller.join();
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM movies")) {
                r.next();
                System.out.println("after " + r.getInt(1));
            }
        }
    }
}
