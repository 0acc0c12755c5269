//! Lead list import: CSV rows to [`LeadRow`]s (number normalised by the trunk's rules, time
//! zones and region from the row or the number), bad rows reported with their line.
//!
//! The file is read as it comes, one record at a time into one reused buffer, so a list of
//! millions of rows costs the memory of one row. The columns:
//!
//! - `number` (required): rewritten by the trunk's [`NumberRewrite`]; a number it refuses is
//!   a [`RejectReason::BadNumber`].
//! - `time_zone` (optional): one IANA zone name; pins the lead to that zone, else the zones
//!   come from the number ([`crate::zones::locate`], when the rewritten number is `+` and
//!   digits), else the group names none and the campaign's `time_zone` applies when hours
//!   are checked (so a later edit of the campaign's zone moves those leads too).
//! - `region` (optional): an ISO 3166-2 code such as `US-FL`, else the number's.
//! - any other column is kept as a field, in file order, without its empty values (the
//!   agent gets them as `X-Lead-<name>`). A column with an empty name (a trailing `,` in the
//!   header) is ignored.
//!
//! Column names `number`, `time_zone` and `region` are matched without regard to case or
//! surrounding spaces; values are trimmed; a UTF-8 byte order mark before the header is
//! skipped. A row's line is the file line its first field is on, as an editor counts lines
//! (`\n`, `\r\n` and a lone `\r` each end one), blank lines included: csv's own record
//! position is where the reader stood after the previous row, which is one line early after
//! a CRLF ending (spreadsheet exports) or a blank line. Duplicates and DNC numbers are the store's to reject: they need the campaign's
//! other leads and lists.

use crate::definition::{is_region_code, CampaignDef};
use crate::types::{LeadGroup, LeadRow, RejectReason, RejectedRow};
use crate::zones;
use chrono_tz::Tz;
use trunk_profiles::NumberRewrite;

/// UTF-8 byte order mark, which spreadsheet programs write at the start of a CSV export.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One run of line-ending bytes (`\r`, `\n`) in the input: blank lines, and the ending of
/// the line before them.
#[derive(Debug, Clone, Copy)]
struct EndingRun {
    /// Offset of its first byte.
    start: u64,
    /// Offset of the first byte after it.
    end: u64,
    /// The 1-based line of the byte at `end`.
    line_after: u64,
}

/// The input, watched on its way to the CSV parser for where its lines start. The parser
/// reads ahead of the rows it has returned, so the runs are queued until the rows that start
/// after them have been numbered; the queue holds at most the parser's read-ahead.
#[derive(Debug)]
struct LineTap<R> {
    inner: R,
    /// Offset of the next byte.
    offset: u64,
    /// Line of the next byte.
    line: u64,
    /// The previous byte was `\r` (a `\n` after it ends no further line).
    after_cr: bool,
    /// Start of the run of line-ending bytes under way.
    run_start: Option<u64>,
    runs: std::collections::VecDeque<EndingRun>,
}

impl<R> LineTap<R> {
    fn new(inner: R) -> Self {
        LineTap {
            inner,
            offset: 0,
            line: 1,
            after_cr: false,
            run_start: None,
            runs: std::collections::VecDeque::new(),
        }
    }

    /// The line of the first byte at or after `start` that is not a line ending: where a
    /// row whose parsing began at offset `start` really starts. `None` when `start` is not
    /// at a line ending.
    fn line_from(&mut self, start: u64) -> Option<u64> {
        while self.runs.front().is_some_and(|r| r.end < start) {
            self.runs.pop_front();
        }
        self.runs
            .front()
            .filter(|r| r.start <= start)
            .map(|r| r.line_after)
    }
}

impl<R: std::io::Read> std::io::Read for LineTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            match b {
                b'\r' | b'\n' => {
                    if b == b'\r' || !self.after_cr {
                        self.line += 1;
                    }
                    self.after_cr = b == b'\r';
                    self.run_start.get_or_insert(self.offset);
                }
                _ => {
                    self.after_cr = false;
                    if let Some(start) = self.run_start.take() {
                        self.runs.push_back(EndingRun {
                            start,
                            end: self.offset,
                            line_after: self.line,
                        });
                    }
                }
            }
            self.offset += 1;
        }
        Ok(n)
    }
}

/// Where the columns of the header are.
#[derive(Debug)]
struct Columns {
    /// Fields each row must have.
    width: usize,
    number: usize,
    time_zone: Option<usize>,
    region: Option<usize>,
    /// The other named columns: index and name, in file order.
    extra: Vec<(usize, String)>,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> Result<Columns, String> {
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(
                "the lead list is empty, expected a header row with a number column".to_string(),
            );
        }
        let mut names = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let raw = if i == 0 {
                raw.strip_prefix(BOM).unwrap_or(raw)
            } else {
                raw
            };
            let name = std::str::from_utf8(raw)
                .map_err(|_| format!("header column {} is not valid UTF-8", i + 1))?
                .trim();
            names.push(name.to_string());
        }
        let find = |wanted: &str| -> Result<Option<usize>, String> {
            let mut found = names
                .iter()
                .enumerate()
                .filter(|(_, n)| n.eq_ignore_ascii_case(wanted))
                .map(|(i, _)| i);
            let first = found.next();
            match found.next() {
                Some(second) => Err(format!(
                    "header has two {wanted} columns ({} and {}), expected one",
                    first.map_or(0, |i| i + 1),
                    second + 1
                )),
                None => Ok(first),
            }
        };
        let number = find("number")?.ok_or_else(|| {
            format!(
                "header has no number column, expected one among its columns ({})",
                names.join(",")
            )
        })?;
        let time_zone = find("time_zone")?;
        let region = find("region")?;
        let mut extra: Vec<(usize, String)> = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            if name.is_empty() || i == number || Some(i) == time_zone || Some(i) == region {
                continue;
            }
            if let Some((first, _)) = extra.iter().find(|(_, n)| *n == name) {
                return Err(format!(
                    "header has two {name:?} columns ({} and {}), expected each name once",
                    first + 1,
                    i + 1
                ));
            }
            extra.push((i, name));
        }
        Ok(Columns {
            width: header.len(),
            number,
            time_zone,
            region,
            extra,
        })
    }
}

/// The rows of a lead list, in file order: each a lead or a rejection. Returned by
/// [`read_leads`].
///
/// A read error of the input (not of its content) ends the rows with one
/// [`RejectReason::Malformed`] that says so.
#[derive(Debug)]
pub struct Leads<R> {
    reader: csv::Reader<LineTap<R>>,
    record: csv::ByteRecord,
    columns: Columns,
    rewrite: NumberRewrite,
    finished: bool,
}

/// Reads a CSV lead list; each row is a lead or a rejection, in file order. A header row
/// is required and must have a `number` column; the module docs list the columns.
///
/// `Err` only when the header is missing or unusable (no `number` column, a column name
/// twice, not UTF-8, unreadable input); every problem of a row is that row's rejection.
/// `def` is the campaign the leads are for; rows are read the same way for every campaign,
/// its `time_zone` applying later to the leads whose group names no zone.
pub fn read_leads<R: std::io::Read>(
    def: &CampaignDef,
    rewrite: &NumberRewrite,
    input: R,
) -> Result<Leads<R>, String> {
    let _ = def;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(LineTap::new(input));
    let header = reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?;
    let columns = Columns::from_header(header)?;
    Ok(Leads {
        reader,
        record: csv::ByteRecord::new(),
        columns,
        rewrite: rewrite.clone(),
        finished: false,
    })
}

impl<R: std::io::Read> Iterator for Leads<R> {
    type Item = Result<LeadRow, RejectedRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {
                let position = self.record.position();
                let line = position
                    .and_then(|p| self.reader.get_mut().line_from(p.byte()))
                    .or(position.map(csv::Position::line))
                    .unwrap_or(0);
                Some(self.row(line))
            }
            Ok(false) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                let line = e
                    .position()
                    .or_else(|| self.reader.position().into())
                    .map_or(0, csv::Position::line);
                Some(Err(RejectedRow {
                    line,
                    number: None,
                    reason: RejectReason::Malformed(format!(
                        "cannot read the rest of the file: {e}"
                    )),
                }))
            }
        }
    }
}

impl<R> Leads<R> {
    /// The record in `self.record`, read from `line`.
    fn row(&self, line: u64) -> Result<LeadRow, RejectedRow> {
        let c = &self.columns;
        let rec = &self.record;
        let text = |i: usize| std::str::from_utf8(&rec[i]).ok();
        let number = rec.get(c.number).and_then(|_| text(c.number));
        let reject = |reason: RejectReason| RejectedRow {
            line,
            number: number.map(str::to_string),
            reason,
        };
        if rec.len() != c.width {
            return Err(reject(RejectReason::Malformed(format!(
                "{} fields, the header has {}",
                rec.len(),
                c.width
            ))));
        }
        let Some(number) = number else {
            return Err(reject(RejectReason::Malformed(
                "the number is not valid UTF-8".to_string(),
            )));
        };
        let normalised = self
            .rewrite
            .rewrite(number)
            .map_err(|e| reject(RejectReason::BadNumber(e.to_string())))?;
        let column = |i: Option<usize>, name: &str| -> Result<Option<&str>, RejectedRow> {
            match i {
                None => Ok(None),
                Some(i) => match text(i) {
                    None => Err(reject(RejectReason::Malformed(format!(
                        "the {name} is not valid UTF-8"
                    )))),
                    Some("") => Ok(None),
                    Some(v) => Ok(Some(v)),
                },
            }
        };
        let row_zone = match column(c.time_zone, "time_zone")? {
            None => None,
            Some(v) => match v.parse::<Tz>() {
                Ok(tz) => Some(tz.name()),
                Err(_) => return Err(reject(RejectReason::BadTimeZone(v.to_string()))),
            },
        };
        let row_region = match column(c.region, "region")? {
            None => None,
            Some(v) => {
                let code = v.to_ascii_uppercase();
                if !is_region_code(&code) {
                    return Err(reject(RejectReason::Malformed(format!(
                        "region {v:?} is not a region code, expected an ISO 3166-2 code \
                         such as \"US-FL\""
                    ))));
                }
                Some(code)
            }
        };
        let located = if normalised.starts_with('+') {
            zones::locate_group(&normalised)
        } else {
            None
        };
        let zones = row_zone
            .or(located.map(|(z, _)| z))
            .unwrap_or_default()
            .to_string();
        let region = row_region.or_else(|| located.and_then(|(_, r)| r).map(str::to_string));
        let mut fields = Vec::with_capacity(c.extra.len());
        for (i, name) in &c.extra {
            match text(*i) {
                None => {
                    return Err(reject(RejectReason::Malformed(format!(
                        "column {name:?} is not valid UTF-8"
                    ))))
                }
                Some("") => {}
                Some(v) => fields.push((name.clone(), v.to_string())),
            }
        }
        Ok(LeadRow {
            line,
            number: normalised,
            group: LeadGroup { zones, region },
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> CampaignDef {
        CampaignDef::parse("t.toml", "name = \"t\"\npool = \"p\"\n").expect("valid")
    }

    /// E.164 with national numbers taken as US ones.
    fn us_e164() -> NumberRewrite {
        let mut r = NumberRewrite::default();
        r.e164 = true;
        r.country_code = Some("1".to_string());
        r.international_prefix = "011".to_string();
        r
    }

    fn read(csv: &str) -> Vec<Result<LeadRow, RejectedRow>> {
        read_leads(&def(), &us_e164(), csv.as_bytes())
            .expect("header is fine")
            .collect()
    }

    fn lead(r: &Result<LeadRow, RejectedRow>) -> &LeadRow {
        r.as_ref().expect("a lead")
    }

    fn rejected(r: &Result<LeadRow, RejectedRow>) -> &RejectedRow {
        r.as_ref().expect_err("a rejection")
    }

    fn group(zones: &str, region: Option<&str>) -> LeadGroup {
        LeadGroup {
            zones: zones.to_string(),
            region: region.map(str::to_string),
        }
    }

    #[test]
    fn rows_become_leads_with_zones_from_the_number() {
        let rows =
            read("name,number,notes\nAda,(212) 555-0100,call after lunch\nBob,+442071234567,\n");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            lead(&rows[0]),
            &LeadRow {
                line: 2,
                number: "+12125550100".to_string(),
                group: group("America/New_York", Some("US-NY")),
                fields: vec![
                    ("name".to_string(), "Ada".to_string()),
                    ("notes".to_string(), "call after lunch".to_string()),
                ],
            }
        );
        let bob = lead(&rows[1]);
        assert_eq!(bob.group, group("Europe/London", None));
        assert_eq!(bob.fields, vec![("name".to_string(), "Bob".to_string())]);
    }

    #[test]
    fn time_zone_and_region_columns_win_over_the_number() {
        let rows = read(
            "number,Time_Zone,REGION\n+12125550100,America/Chicago,us-tx\n+13055550100,,\n\
             +12125550100,Europe/Paris,\n",
        );
        assert_eq!(
            lead(&rows[0]).group,
            group("America/Chicago", Some("US-TX"))
        );
        assert_eq!(
            lead(&rows[1]).group,
            group("America/New_York", Some("US-FL"))
        );
        assert_eq!(lead(&rows[2]).group, group("Europe/Paris", Some("US-NY")));
        assert!(lead(&rows[0]).fields.is_empty());
    }

    #[test]
    fn split_zone_number_gets_every_zone() {
        let rows = read("number\n+16055550100\n");
        assert_eq!(
            lead(&rows[0]).group,
            group("America/Denver,America/North_Dakota/Center", Some("US-SD"))
        );
    }

    #[test]
    fn number_without_a_known_zone_leaves_the_campaign_zone() {
        // Without `e164` the number stays national: no `+`, nothing to locate.
        let rows: Vec<_> = read_leads(
            &def(),
            &NumberRewrite::default(),
            "number\n2125550100\n+9991234567\n".as_bytes(),
        )
        .expect("header")
        .collect();
        assert_eq!(lead(&rows[0]).group, group("", None));
        assert_eq!(lead(&rows[0]).number, "2125550100");
        assert_eq!(lead(&rows[1]).group, group("", None));
    }

    #[test]
    fn bad_number_is_rejected_with_the_rewrite_error() {
        let rows = read("number,name\n555-CALL-NOW,x\n,y\n+1234567890123456,z\n");
        let r = rejected(&rows[0]);
        assert_eq!(r.line, 2);
        assert_eq!(r.number.as_deref(), Some("555-CALL-NOW"));
        assert!(
            matches!(&r.reason, RejectReason::BadNumber(m) if m.contains("invalid character 'C'")),
            "{r:?}"
        );
        assert_eq!(
            rejected(&rows[1]).reason,
            RejectReason::BadNumber("empty number".to_string())
        );
        assert!(
            matches!(&rejected(&rows[2]).reason, RejectReason::BadNumber(m) if m.contains("15"))
        );
    }

    #[test]
    fn unknown_time_zone_is_rejected() {
        let rows = read("number,time_zone\n+12125550100,America/Gotham\n");
        let r = rejected(&rows[0]);
        assert_eq!(
            r.reason,
            RejectReason::BadTimeZone("America/Gotham".to_string())
        );
        assert_eq!(r.number.as_deref(), Some("+12125550100"));
    }

    #[test]
    fn bad_region_is_rejected() {
        let rows = read("number,region\n+12125550100,Florida\n");
        assert!(
            matches!(&rejected(&rows[0]).reason, RejectReason::Malformed(m) if m.contains("Florida"))
        );
    }

    #[test]
    fn row_with_the_wrong_field_count_is_rejected_and_reading_goes_on() {
        let rows = read("number,name\n+12125550100\n+12125550101,a,b\n+12125550102,c\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rejected(&rows[0]),
            &RejectedRow {
                line: 2,
                number: Some("+12125550100".to_string()),
                reason: RejectReason::Malformed("1 fields, the header has 2".to_string()),
            }
        );
        assert_eq!(rejected(&rows[1]).line, 3);
        assert_eq!(lead(&rows[2]).line, 4);
    }

    #[test]
    fn invalid_utf8_is_rejected_per_row() {
        let mut input = b"number,name\n+12125550100,".to_vec();
        input.extend_from_slice(b"\xff\xfe\n+12125550101,ok\n");
        let rows: Vec<_> = read_leads(&def(), &us_e164(), input.as_slice())
            .expect("header")
            .collect();
        assert!(
            matches!(&rejected(&rows[0]).reason, RejectReason::Malformed(m) if m.contains("UTF-8"))
        );
        assert_eq!(lead(&rows[1]).line, 3);
    }

    #[test]
    fn lines_count_the_header_blank_lines_and_quoted_newlines() {
        let rows = read("number,notes\n\n+12125550100,\"two\nlines\"\n+12125550101,x\n");
        assert_eq!(lead(&rows[0]).line, 3);
        assert_eq!(
            lead(&rows[0]).fields,
            vec![("notes".to_string(), "two\nlines".to_string())]
        );
        assert_eq!(lead(&rows[1]).line, 5);
    }

    #[test]
    fn lines_are_counted_with_crlf_and_cr_endings() {
        let rows = read("number\r\n+12125550100\r\n\r\n+12125550101\r\n+12125550102");
        let lines: Vec<u64> = rows.iter().map(|r| lead(r).line).collect();
        assert_eq!(lines, [2, 4, 5]);
        let rows = read("number\r+12125550100\r\r+12125550101\r");
        let lines: Vec<u64> = rows.iter().map(|r| lead(r).line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn byte_order_mark_and_crlf_are_accepted() {
        let rows = read("\u{feff}number,name\r\n+12125550100,Ada\r\n");
        assert_eq!(
            lead(&rows[0]).fields,
            vec![("name".to_string(), "Ada".to_string())]
        );
    }

    #[test]
    fn header_problems_are_errors() {
        let err = |csv: &str| read_leads(&def(), &us_e164(), csv.as_bytes()).expect_err("an error");
        assert!(err("").contains("empty"));
        assert!(err("phone,name\n+12125550100,x\n").contains("no number column"));
        assert!(err("number,Number\n").contains("two number columns"));
        assert!(err("number,name,name\n").contains("two \"name\" columns"));
    }

    #[test]
    fn header_only_has_no_rows() {
        assert!(read("number,name\n").is_empty());
    }

    #[test]
    fn unnamed_columns_are_ignored() {
        let rows = read("number,name,\n+12125550100,Ada,junk\n");
        assert_eq!(
            lead(&rows[0]).fields,
            vec![("name".to_string(), "Ada".to_string())]
        );
    }

    /// Rows made on demand, endlessly: reading must not wait for the end of the input.
    struct EndlessRows {
        pending: Vec<u8>,
        next: u64,
    }

    impl std::io::Read for EndlessRows {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                self.pending =
                    format!("+1212555{:04},Lead {}\n", self.next % 10_000, self.next).into_bytes();
                self.next += 1;
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn rows_stream_without_reading_the_whole_input() {
        let input = EndlessRows {
            pending: b"number,name\n".to_vec(),
            next: 0,
        };
        let leads = read_leads(&def(), &us_e164(), input).expect("header");
        let first: Vec<_> = leads.take(3).map(|r| r.expect("lead").number).collect();
        assert_eq!(first, ["+12125550000", "+12125550001", "+12125550002"]);
    }

    #[test]
    fn thousands_of_rows_keep_their_lines_and_order() {
        let mut csv = String::from("number,time_zone,name\n");
        for i in 0..5000u32 {
            match i % 100 {
                7 => csv.push_str("not a number,,x\n"),
                8 => csv.push_str("+12125550100,Nowhere/City,x\n"),
                9 => csv.push_str("+12125550100\n"),
                _ => csv.push_str(&format!(
                    "+1{}555{:04},,lead {i}\n",
                    [212, 305, 605, 416][i as usize % 4],
                    i % 10_000
                )),
            }
        }
        let rows = read(&csv);
        assert_eq!(rows.len(), 5000);
        let (ok, bad): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.is_ok());
        assert_eq!(ok.len(), 4850);
        assert_eq!(bad.len(), 150);
        for (i, r) in rows.iter().enumerate() {
            let line = match r {
                Ok(l) => l.line,
                Err(r) => r.line,
            };
            assert_eq!(line, i as u64 + 2);
        }
        let ny = ok
            .iter()
            .filter(|r| lead(r).group.region.as_deref() == Some("US-NY"))
            .count();
        assert!(ny > 1000, "{ny}");
    }
}
