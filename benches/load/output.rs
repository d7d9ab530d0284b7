//! Output: aligned markdown tables (two columns, or several side by side), and JSON lines
//! written by hand.

use std::fmt::Write as _;

use crate::stats::Spread;

/// A two-column markdown table, aligned for reading in a terminal.
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    pub fn new(title: String) -> Table {
        Table {
            title,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, label: &str, value: String) {
        self.rows.push((label.to_owned(), value));
    }

    pub fn print(&self) {
        let width = |column: fn(&(String, String)) -> &String, header: &str| {
            self.rows
                .iter()
                .map(|row| column(row).chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        };
        let (left, right) = (width(|row| &row.0, "metric"), width(|row| &row.1, "value"));
        let mut out = format!("\n### {}\n\n", self.title);
        let _ = writeln!(out, "| {:left$} | {:right$} |", "metric", "value");
        let _ = writeln!(out, "|{}|{}|", "-".repeat(left + 2), "-".repeat(right + 2));
        for (label, value) in &self.rows {
            let _ = writeln!(out, "| {label:left$} | {value:right$} |");
        }
        print!("{out}");
    }
}

/// A markdown table of several columns, for results side by side.
pub struct Grid {
    title: String,
    rows: Vec<Vec<String>>,
}

impl Grid {
    /// A table with these column headers.
    pub fn new(title: String, headers: &[&str]) -> Grid {
        Grid {
            title,
            rows: vec![headers.iter().map(|&h| h.to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cell = |row: &Vec<String>| row.get(c).map_or(0, |s| s.chars().count());
                self.rows.iter().map(cell).max().unwrap_or(0)
            })
            .collect();
        let line = |row: &Vec<String>| {
            let cells = (0..columns).map(|c| {
                let cell = row.get(c).map_or("", String::as_str);
                format!(" {cell:w$} ", w = widths[c])
            });
            format!("|{}|\n", cells.collect::<Vec<_>>().join("|"))
        };
        let mut out = format!("\n### {}\n\n", self.title);
        out.push_str(&line(&self.rows[0]));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        self.rows[1..]
            .iter()
            .for_each(|row| out.push_str(&line(row)));
        print!("{out}");
    }
}

pub fn spread_text(spread: Option<Spread>, unit: &str) -> String {
    match spread {
        Some(s) => format!("{:.2} / {:.2} / {:.2} {unit}", s.p50, s.p99, s.max),
        None => "-".into(),
    }
}

pub fn number_text(value: Option<f64>, decimals: usize, unit: &str) -> String {
    match value {
        Some(value) => format!("{value:.decimals$} {unit}").trim_end().to_owned(),
        None => "-".into(),
    }
}

pub fn pair_text(idle: Option<u64>, held: Option<u64>, unit: &str) -> String {
    let text = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!("{} → {} {unit}", text(idle), text(held))
        .trim_end()
        .to_owned()
}

/// One JSON object on one line, written by hand: keys are fixed ASCII, values numbers, booleans,
/// null or short strings.
pub struct Json {
    out: String,
}

impl Json {
    pub fn new(scenario: &str) -> Json {
        let mut json = Json {
            out: String::from("{"),
        };
        json.string("scenario", Some(scenario));
        json
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        let _ = write!(self.out, "\"{key}\":");
    }

    pub fn int(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    /// A number with three decimals, or null when there is none (or it is not finite).
    pub fn num(&mut self, key: &str, value: Option<f64>) {
        self.key(key);
        match value {
            Some(value) if value.is_finite() => {
                let _ = write!(self.out, "{value:.3}");
            }
            _ => self.out.push_str("null"),
        }
    }

    /// A whole number, or null when there is none.
    pub fn opt_int(&mut self, key: &str, value: Option<u64>) {
        match value {
            Some(value) => self.int(key, value),
            None => {
                self.key(key);
                self.out.push_str("null");
            }
        }
    }

    pub fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    pub fn string(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        let Some(value) = value else {
            self.out.push_str("null");
            return;
        };
        self.out.push('"');
        for c in value.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", u32::from(c));
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// `KEY_p50`, `KEY_p99` and `KEY_max`.
    pub fn spread(&mut self, key: &str, spread: Option<Spread>) {
        self.num(&format!("{key}_p50"), spread.map(|s| s.p50));
        self.num(&format!("{key}_p99"), spread.map(|s| s.p99));
        self.num(&format!("{key}_max"), spread.map(|s| s.max));
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}
