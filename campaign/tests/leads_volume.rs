//! A lead list of a million rows, read as a stream. Ignored by default (it is a volume
//! check, slow in a debug build); run it with
//! `cargo test -p campaign --release --test leads_volume -- --ignored` under `time`.

use campaign::definition::CampaignDef;
use campaign::leads::read_leads;
use trunk_profiles::NumberRewrite;

/// `rows` generated lead rows after a header, made as they are read.
struct GeneratedList {
    pending: Vec<u8>,
    at: usize,
    next: u32,
    rows: u32,
}

impl std::io::Read for GeneratedList {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            if self.next == self.rows {
                return Ok(0);
            }
            self.pending.clear();
            self.at = 0;
            // Refill a few hundred rows at a time; area codes in New York, Florida, South
            // Dakota (split zone), Ontario, and a London number.
            for _ in 0..256.min(self.rows - self.next) {
                let i = self.next;
                let number = match i % 5 {
                    0 => format!("(212) 555-{:04}", i % 10_000),
                    1 => format!("+1 305 555 {:04}", i % 10_000),
                    2 => format!("605-555-{:04}", i % 10_000),
                    3 => format!("+1416555{:04}", i % 10_000),
                    _ => format!("011 44 20 7123 {:04}", i % 10_000),
                };
                let line = format!("{number},Lead {i},{},,note {i}\r\n", i % 97);
                self.pending.extend_from_slice(line.as_bytes());
                self.next += 1;
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
#[ignore = "volume check: run in release with --ignored"]
fn a_million_rows_stream_through_the_import() {
    const ROWS: u32 = 1_000_000;
    let def = CampaignDef::parse("v.toml", "name = \"v\"\npool = \"p\"\n").expect("valid");
    let mut rewrite = NumberRewrite::default();
    rewrite.e164 = true;
    rewrite.country_code = Some("1".to_string());
    rewrite.international_prefix = "011".to_string();
    let input = GeneratedList {
        pending: b"number,name,score,empty,notes\r\n".to_vec(),
        at: 0,
        next: 0,
        rows: ROWS,
    };
    let (mut leads, mut split, mut last_line) = (0u32, 0u32, 0u64);
    for row in read_leads(&def, &rewrite, input).expect("header") {
        let lead = row.expect("every generated row is a lead");
        leads += 1;
        split += u32::from(lead.group.zones.contains(','));
        last_line = lead.line;
    }
    assert_eq!(leads, ROWS);
    assert_eq!(split, ROWS / 5);
    assert_eq!(last_line, u64::from(ROWS) + 1);
}
