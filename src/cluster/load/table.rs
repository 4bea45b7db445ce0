//! Column tables as `kubectl get … -o wide` prints them (Go tabwriter: left-aligned columns,
//! at least three spaces of padding). Cells are cut at the header's column positions, so cells
//! with spaces (`Ubuntu 22.04.4 LTS`, `2 (3h ago)`) and headers with spaces (`NOMINATED NODE`)
//! survive. A row that does not line up with its header falls back to whitespace splitting when
//! that is unambiguous; otherwise it is reported, not guessed.

/// Two-word headers kubectl prints; a retyped table with single spaces still parses.
const TWO_WORD_HEADERS: &[(&str, &str)] = &[("NOMINATED", "NODE"), ("READINESS", "GATES")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    /// Char index where the column starts.
    pub start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// 1-based line number in the file.
    pub line: u32,
    pub cells: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextTable {
    pub header_line: u32,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// Rows that could not be split into cells: (line, reason).
    pub bad_rows: Vec<(u32, String)>,
}

impl TextTable {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
    pub fn has(&self, name: &str) -> bool {
        self.column(name).is_some()
    }
}

/// A header line: tokens of upper-case letters, digits and `-_()/.` only, first token NAME or
/// NAMESPACE (kubectl always starts with one of them).
pub(crate) fn is_header(line: &str) -> bool {
    let mut tokens = line.split_whitespace();
    let Some(first) = tokens.next() else {
        return false;
    };
    if first != "NAME" && first != "NAMESPACE" {
        return false;
    }
    line.split_whitespace().all(|t| {
        t.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "-_()/.".contains(c))
    })
}

fn header_columns(line: &str) -> Vec<Column> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        tokens.push((start, chars[start..i].iter().collect()));
    }
    let mut cols: Vec<Column> = Vec::new();
    let mut k = 0;
    while k < tokens.len() {
        let (start, ref t) = tokens[k];
        if let Some((_, second)) = TWO_WORD_HEADERS.iter().find(|(a, _)| a == t)
            && tokens.get(k + 1).is_some_and(|(_, n)| n == second)
        {
            cols.push(Column {
                name: format!("{t} {second}"),
                start,
            });
            k += 2;
            continue;
        }
        cols.push(Column {
            name: t.clone(),
            start,
        });
        k += 1;
    }
    cols
}

fn split_row(chars: &[char], columns: &[Column]) -> Result<Vec<String>, String> {
    // Aligned: every column that the row reaches starts right after whitespace and with a
    // non-blank character. Columns past the end of the row (a truncated row) come out empty and
    // the caller reports the missing value.
    let aligned = columns.iter().enumerate().all(|(i, c)| {
        c.start >= chars.len()
            || ((i == 0 || chars[c.start - 1].is_whitespace()) && !chars[c.start].is_whitespace())
    });
    if aligned {
        let cells = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let end = columns
                    .get(i + 1)
                    .map_or(chars.len(), |n| n.start)
                    .min(chars.len());
                if c.start >= end {
                    String::new()
                } else {
                    chars[c.start..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned()
                }
            })
            .collect();
        return Ok(cells);
    }
    let tokens: Vec<String> = chars
        .iter()
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if tokens.len() == columns.len() {
        return Ok(tokens);
    }
    Err(format!(
        "row does not line up with the header's {} columns and has {} whitespace-separated fields",
        columns.len(),
        tokens.len()
    ))
}

/// Split text into tables: each starts at a header line and runs to the next blank line or
/// header. Lines before the first header (a shell prompt, a command) are ignored; lines after
/// a table ended that start no new one are returned as orphans so the caller can say so. Each
/// row is capped to `MAX_LINE_CHARS` characters so a pathological line cannot blow up memory.
pub(crate) fn parse_tables(text: &str) -> (Vec<TextTable>, Vec<u32>) {
    const MAX_LINE_CHARS: usize = 64 * 1024;
    let mut tables: Vec<TextTable> = Vec::new();
    let mut orphans: Vec<u32> = Vec::new();
    let mut current: Option<TextTable> = None;
    for (idx, raw) in text.lines().enumerate() {
        let line_no = u32::try_from(idx + 1).unwrap_or(u32::MAX);
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            if let Some(t) = current.take() {
                tables.push(t);
            }
            continue;
        }
        if is_header(line) {
            if let Some(t) = current.take() {
                tables.push(t);
            }
            current = Some(TextTable {
                header_line: line_no,
                columns: header_columns(line),
                rows: Vec::new(),
                bad_rows: Vec::new(),
            });
            continue;
        }
        let Some(t) = current.as_mut() else {
            if !tables.is_empty() {
                orphans.push(line_no);
            }
            continue;
        };
        let chars: Vec<char> = line.chars().take(MAX_LINE_CHARS).collect();
        match split_row(&chars, &t.columns) {
            Ok(cells) => t.rows.push(Row {
                line: line_no,
                cells,
            }),
            Err(reason) => t.bad_rows.push((line_no, reason)),
        }
    }
    if let Some(t) = current.take() {
        tables.push(t);
    }
    (tables, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_cut_keeps_spaces_inside_cells() {
        let t = "\
NAME    STATUS   ROLES   AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE             KERNEL-VERSION
node0   Ready    agent   27h   v1.19.7   10.220.1.4    <none>        Ubuntu 18.04.5 LTS   5.4.0-1040-azure
";
        let (tabs, _) = parse_tables(t);
        assert_eq!(tabs.len(), 1);
        let tab = &tabs[0];
        let os = tab.column("OS-IMAGE").unwrap();
        assert_eq!(tab.rows[0].cells[os], "Ubuntu 18.04.5 LTS");
        assert_eq!(
            tab.rows[0].cells[tab.column("INTERNAL-IP").unwrap()],
            "10.220.1.4"
        );
        assert_eq!(tab.rows[0].line, 2);
    }

    #[test]
    fn two_word_headers() {
        let cols = header_columns("NAME   IP   NODE   NOMINATED NODE   READINESS GATES");
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["NAME", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
        );
    }

    #[test]
    fn misaligned_rows_fall_back_or_are_reported() {
        let t = "NAME IP NODE\np1 10.0.0.1 n1\np2 10.0.0.2 n1 extra stuff\n";
        let tab = &parse_tables(t).0[0];
        assert_eq!(tab.rows.len(), 1);
        assert_eq!(tab.rows[0].cells, ["p1", "10.0.0.1", "n1"]);
        assert_eq!(tab.bad_rows.len(), 1);
        assert_eq!(tab.bad_rows[0].0, 3);
    }

    #[test]
    fn several_tables_and_preamble() {
        let t = "$ kubectl get svc,pods -o wide\nNAME  TYPE\nservice/a  LoadBalancer\n\nNAME  IP\npod/b  10.0.0.1\n";
        let (tabs, _) = parse_tables(t);
        assert_eq!(tabs.len(), 2);
        assert_eq!(tabs[1].rows[0].cells, ["pod/b", "10.0.0.1"]);
    }

    #[test]
    fn short_last_cell_and_missing_trailing_column() {
        let t = "NAME    IP         NODE\np1      10.0.0.1   n\np2      10.0.0.2\n";
        let tab = &parse_tables(t).0[0];
        assert_eq!(tab.rows[0].cells, ["p1", "10.0.0.1", "n"]);
        assert_eq!(tab.rows[1].cells, ["p2", "10.0.0.2", ""]);
    }
}
