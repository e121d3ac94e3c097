//! Rendering results: aligned plain-text tables for people, JSON for scripts. Every result
//! type implements [`Render`]: `serde::Serialize` gives its JSON (stable field names; amounts,
//! ids and chain ids as decimal strings, addresses as EIP-55 `0x` hex), [`Render::table`]
//! its table.

use serde::Serialize;

use crate::error::CliError;

/// A command's result.
pub trait Render: Serialize {
    fn table(&self) -> Table;
}

/// Prints `value` as JSON (`--json`) or as its table.
pub fn print(value: &impl Render, json: bool) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::Local(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", value.table().render());
    }
    Ok(())
}

/// Rows of cells, rendered with each column padded to its widest cell.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with column headings (a list of records).
    pub fn with_header(header: &[&str]) -> Self {
        Self {
            header: Some(header.iter().map(|h| h.to_string()).collect()),
            rows: Vec::new(),
        }
    }

    /// A two-column `field  value` table (one record).
    pub fn fields() -> Self {
        Self::default()
    }

    pub fn row(mut self, cells: Vec<String>) -> Self {
        self.rows.push(cells);
        self
    }

    pub fn field(self, name: &str, value: impl ToString) -> Self {
        self.row(vec![name.to_string(), value.to_string()])
    }

    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The text: cells separated by two spaces, the last column not padded, one line per
    /// row, ending in a newline (empty lists say so).
    pub fn render(&self) -> String {
        let lines: Vec<&Vec<String>> = self.header.iter().chain(self.rows.iter()).collect();
        let columns = lines.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in &lines {
            for (i, cell) in line.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in &lines {
            let last = line.len().saturating_sub(1);
            for (i, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        if self.header.is_some() && self.rows.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut t = Table::with_header(&["ID", "PHASE", "DEPOSIT"]);
        t.push(vec!["1".into(), "opened".into(), "1000".into()]);
        t.push(vec!["22".into(), "closed".into(), "5".into()]);
        assert_eq!(
            t.render(),
            "ID  PHASE   DEPOSIT\n1   opened  1000\n22  closed  5\n"
        );
        let t = Table::fields().field("hub", "0xab").field("chain_id", 337);
        assert_eq!(t.render(), "hub       0xab\nchain_id  337\n");
        assert_eq!(Table::with_header(&["A"]).render(), "A\n(none)\n");
    }
}
