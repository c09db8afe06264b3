//! Schema linking: a warehouse has hundreds of tables, and the synthesis prompt must
//! stay bounded. When a dataset's schema text is larger than the budget, the tables
//! are ranked by how well they match the question (BM25 over each table's name,
//! columns, descriptions and sample values, identifiers split into words), taken in
//! rank order while they fit the budget, each with the tables on the shortest join
//! path to those already taken, so the model can always join what it is shown.
//! Smaller schemas are shown whole.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bm25::{Document, Language, SearchEngine, SearchEngineBuilder};

use super::{schema_text, DatasetInfo};

/// Estimated tokens of a text: about four characters a token, as the usage figures
/// of the scripted LLM and most tokenizers on English and SQL.
pub fn tokens(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// What linking chose for one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    /// The tables shown, in the dataset's order.
    pub tables: Vec<String>,
    /// The dataset's table count.
    pub considered: usize,
    /// Estimated tokens of the schema text shown.
    pub tokens: usize,
    /// Whether the whole schema fit the budget (no linking needed).
    pub whole: bool,
}

pub struct Linker {
    engine: SearchEngine<usize>,
    names: Vec<String>,
    /// Estimated tokens of each table's part of the schema text.
    sizes: Vec<usize>,
    /// Tables joined to each table.
    neighbours: BTreeMap<usize, BTreeSet<usize>>,
    /// Estimated tokens of the dataset's header line, shown whatever is linked.
    header: usize,
    whole_tokens: usize,
}

/// `box_office_usd_millions` or `boxOffice` as words.
fn words(identifier: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in identifier.chars() {
        if c == '_' || c == '.' || c == '-' {
            out.push(' ');
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase();
        out.push(c);
    }
    out
}

/// The tables a join condition names: `a.x = b.y` gives `a` and `b`
/// (`s.t.col` gives `s.t`).
pub fn join_tables(join: &str) -> Vec<String> {
    let mut tables = Vec::new();
    for side in join.split(|c| c == '=' || c == ' ').map(str::trim).filter(|s| s.contains('.')) {
        if let Some((table, _column)) = side.rsplit_once('.') {
            let table = table.trim_matches('"').to_string();
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
    }
    tables
}

impl Linker {
    pub fn new(info: &DatasetInfo) -> Linker {
        let names: Vec<String> = info.tables.iter().map(|t| t.name.clone()).collect();
        let documents: Vec<Document<usize>> = info
            .tables
            .iter()
            .enumerate()
            .map(|(i, table)| {
                let mut text = format!("{} {}", words(&table.name), table.description.clone().unwrap_or_default());
                for column in &table.columns {
                    text.push_str(&format!(" {} {}", words(&column.name), column.description.clone().unwrap_or_default()));
                    for value in column.values.iter().flatten().chain(column.samples.iter()) {
                        text.push(' ');
                        text.push_str(value);
                    }
                }
                Document { id: i, contents: text }
            })
            .collect();
        let engine = SearchEngineBuilder::<usize>::with_documents(Language::English, documents).build();
        // Each table's share of the text: its part without the dataset's header line.
        let header = tokens(&schema_text::render(info, Some(&[])));
        let sizes = names
            .iter()
            .map(|name| tokens(&schema_text::render(info, Some(std::slice::from_ref(name)))).saturating_sub(header))
            .collect();
        let index = |name: &str| names.iter().position(|n| n == name);
        let mut neighbours: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for join in &info.joins {
            let ends: Vec<usize> = join_tables(join).iter().filter_map(|t| index(t)).collect();
            for &a in &ends {
                for &b in &ends {
                    if a != b {
                        neighbours.entry(a).or_default().insert(b);
                    }
                }
            }
        }
        let whole_tokens = tokens(&schema_text::render(info, None));
        Linker { engine, names, sizes, neighbours, header, whole_tokens }
    }

    /// The tables to show for `question` within `budget` tokens.
    pub fn link(&self, question: &str, budget: usize) -> Linked {
        let considered = self.names.len();
        if self.whole_tokens <= budget {
            return Linked { tables: self.names.clone(), considered, tokens: self.whole_tokens, whole: true };
        }
        let ranked: Vec<usize> = self.engine.search(question, considered).into_iter().map(|hit| hit.document.id).collect();
        // Nothing matched: the tables in the dataset's order, as many as fit.
        let ranked = if ranked.is_empty() { (0..considered).collect() } else { ranked };
        let mut chosen: BTreeSet<usize> = BTreeSet::new();
        let mut used = self.header;
        for table in ranked {
            if chosen.contains(&table) {
                continue;
            }
            let path = self.path_to(&chosen, table);
            let cost: usize = path.iter().filter(|t| !chosen.contains(t)).map(|&t| self.sizes[t]).sum();
            if used + cost > budget && !chosen.is_empty() {
                continue;
            }
            used += cost;
            chosen.extend(path);
        }
        let tables: Vec<String> = chosen.iter().map(|&i| self.names[i].clone()).collect();
        Linked { tables, considered, tokens: used, whole: false }
    }

    /// `table` and the tables on a shortest join path from it to one already
    /// chosen (just `table` when none is chosen or none is reachable).
    fn path_to(&self, chosen: &BTreeSet<usize>, table: usize) -> Vec<usize> {
        if chosen.is_empty() {
            return vec![table];
        }
        let mut previous: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = VecDeque::from([table]);
        let mut seen = BTreeSet::from([table]);
        while let Some(current) = queue.pop_front() {
            if chosen.contains(&current) {
                let mut path = vec![current];
                let mut at = current;
                while let Some(&before) = previous.get(&at) {
                    path.push(before);
                    at = before;
                }
                return path;
            }
            for &next in self.neighbours.get(&current).into_iter().flatten() {
                if seen.insert(next) {
                    previous.insert(next, current);
                    queue.push_back(next);
                }
            }
        }
        vec![table]
    }
}

#[cfg(test)]
mod tests {
    use tag_types::{ColumnInfo, TableInfo};

    use super::*;

    fn table(name: &str, columns: &[&str], description: &str) -> TableInfo {
        TableInfo {
            name: name.into(),
            description: Some(description.into()),
            primary_key: None,
            row_count: 10,
            columns: columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.to_string(),
                    data_type: "VARCHAR".into(),
                    description: None,
                    samples: vec![],
                    distinct_count: 10,
                    values: None,
                })
                .collect(),
        }
    }

    fn wide() -> DatasetInfo {
        let mut tables = vec![
            table("customers", &["customer_id", "full_name", "country"], "people who buy"),
            table("orders", &["order_id", "customer_id", "ordered_at"], "one row per order"),
            table("order_lines", &["order_id", "product_id", "quantity"], "what each order contains"),
            table("products", &["product_id", "product_name", "unitPrice"], "the catalogue of products"),
        ];
        for i in 0..40 {
            tables.push(table(&format!("audit_log_{i}"), &["event_id", "happened_at", "actor"], "internal audit events"));
        }
        DatasetInfo {
            name: "shop".into(),
            description: String::new(),
            tables,
            joins: vec![
                "orders.customer_id = customers.customer_id".into(),
                "order_lines.order_id = orders.order_id".into(),
                "order_lines.product_id = products.product_id".into(),
            ],
            examples: vec![],
            verified: vec![],
            terms: vec![],
        }
    }

    #[test]
    fn relevant_tables_and_their_join_path_fit_the_budget() {
        let info = wide();
        let linker = Linker::new(&info);
        let budget = linker.whole_tokens / 4;
        let linked = linker.link("Which country buys the most products by unit price?", budget);
        assert!(!linked.whole);
        assert!(linked.tokens <= budget, "{linked:?}");
        for needed in ["customers", "products", "orders", "order_lines"] {
            assert!(linked.tables.contains(&needed.to_string()), "{needed} missing: {linked:?}");
        }
        assert!(linked.tables.len() < 10, "the audit tables are left out: {linked:?}");
        let all = linker.link("anything", 1_000_000);
        assert!(all.whole && all.tables.len() == 44);
    }

    #[test]
    fn identifiers_become_words_and_joins_name_their_tables() {
        assert_eq!(words("box_office_usd"), "box office usd");
        assert_eq!(words("unitPrice"), "unit Price");
        assert_eq!(join_tables("a.x = b.y AND a.z = b.w"), vec!["a", "b"]);
        assert_eq!(join_tables("sales.orders.id = crm.people.order_id"), vec!["sales.orders", "crm.people"]);
    }
}
