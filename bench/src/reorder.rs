//! `tagbench reorder`: the prefix hit rate (PHR) of a table's rows in their original
//! order and in the engine's GGR order, and the solver's time, in the form of the
//! public ADRS LLM-SQL benchmark: each row's cells concatenated, listed column groups
//! merged into one column (values joined with no separator, placed last), PHR =
//! longest common prefix with any earlier row over total characters. The output is
//! checked to be lossless: every output row holds exactly its input row's cells.

use std::{path::Path, time::Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tag_server::reorder::{ggr, prefix_hit_rate, GgrOptions, Reordering};

#[derive(Debug, Serialize)]
pub struct ReorderReport {
    pub rows: usize,
    pub columns: Vec<String>,
    /// Percent.
    pub original_phr: f64,
    /// Percent, in the engine's order.
    pub phr: f64,
    pub solver_seconds: f64,
    /// Every output row holds exactly its input row's cells.
    pub lossless: bool,
}

/// The table with the `merge` groups merged: column names and rows.
pub fn load(csv: &Path, merge: &[String]) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader = csv::Reader::from_path(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for spec in merge {
        let mut group = Vec::new();
        for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(index) = header.iter().position(|h| h == name) else {
                bail!("--merge names column {name:?}, which {} does not have (columns: {})", csv.display(), header.join(", "));
            };
            if groups.iter().flatten().chain(&group).any(|&i| i == index) {
                bail!("column {name:?} is in two --merge groups");
            }
            group.push(index);
        }
        if group.len() < 2 {
            bail!("--merge {spec:?} needs at least two columns");
        }
        groups.push(group);
    }
    let merged: Vec<usize> = groups.iter().flatten().copied().collect();
    let kept: Vec<usize> = (0..header.len()).filter(|i| !merged.contains(i)).collect();
    let mut columns: Vec<String> = kept.iter().map(|&i| header[i].clone()).collect();
    columns.extend(groups.iter().map(|g| g.iter().map(|&i| header[i].as_str()).collect::<Vec<_>>().join("+")));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record?;
        let cell = |i: usize| record.get(i).unwrap_or("").to_string();
        let mut row: Vec<String> = kept.iter().map(|&i| cell(i)).collect();
        row.extend(groups.iter().map(|g| g.iter().map(|&i| cell(i)).collect::<String>()));
        rows.push(row);
    }
    Ok((columns, rows))
}

pub fn run(csv: &Path, merge: &[String], out: Option<&Path>, options: GgrOptions) -> anyhow::Result<ReorderReport> {
    let (columns, rows) = load(csv, merge)?;
    let original_phr = prefix_hit_rate(&rows);
    let started = Instant::now();
    let order = ggr(&rows, options);
    let solver_seconds = started.elapsed().as_secs_f64();
    let reordered = order.apply(&rows);
    let lossless = is_lossless(&rows, &order);
    if !lossless {
        bail!("internal error: the reordering lost or changed cells");
    }
    let phr = prefix_hit_rate(&reordered);
    if let Some(out) = out {
        let mut writer = csv::WriterBuilder::new().flexible(true).from_path(out)?;
        for row in &reordered {
            writer.write_record(row)?;
        }
        writer.flush()?;
    }
    Ok(ReorderReport { rows: rows.len(), columns, original_phr, phr, solver_seconds, lossless })
}

/// Every input row appears once, with a permutation of its own cells.
fn is_lossless(rows: &[Vec<String>], order: &Reordering) -> bool {
    let mut seen = vec![false; rows.len()];
    for &r in &order.rows {
        if r >= rows.len() || std::mem::replace(&mut seen[r], true) {
            return false;
        }
        let mut fields = order.fields[r].clone();
        fields.sort_unstable();
        if fields != (0..rows[r].len()).collect::<Vec<_>>() {
            return false;
        }
    }
    seen.iter().all(|&s| s)
}

impl ReorderReport {
    pub fn table(&self) -> String {
        format!(
            "{} rows, columns: {}\noriginal order PHR {:.2}%\nGGR order PHR      {:.2}%\nsolver {:.3} s; lossless: {}\n",
            self.rows,
            self.columns.join(", "),
            self.original_phr,
            self.phr,
            self.solver_seconds,
            self.lossless
        )
    }
}
