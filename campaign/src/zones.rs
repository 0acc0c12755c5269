//! Which time zones and region a number lives in: its country calling code, and for NANP
//! numbers its area code.
//!
//! The tables are libphonenumber's (`data/README.md` names the files and the commit),
//! compiled in and parsed once on first use. A prefix that spans several zones gives all of
//! them (an area code across the Central/Mountain line, a country such as Russia or
//! Australia): the calling-hours check then needs every one of them to be inside the window,
//! which is the safe reading when the number does not say which side the lead is on. A lead
//! list can pin a lead to one zone with its `time_zone` column.

use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::OnceLock;

/// `prefix|Zone&Zone` lines (libphonenumber `resources/timezones/map_data.txt`).
const TIMEZONES: &str = include_str!("../data/timezones.txt");
/// `1NPA|US-XX` lines (from libphonenumber `resources/geocoding/en/1.txt`).
const NANP_REGIONS: &str = include_str!("../data/nanp_regions.txt");

/// Most digits after `+` an E.164 number may have (ITU-T E.164 §6.1).
const E164_MAX_DIGITS: usize = 15;

/// The zones of one prefix.
#[derive(Debug)]
struct Zones {
    /// Parsed, in the data's order.
    zones: Box<[Tz]>,
    /// Their names sorted and joined by `,`: the spelling of [`crate::LeadGroup::zones`].
    names: String,
}

#[derive(Debug)]
struct Tables {
    /// Prefix (digits after `+`) to zones.
    zones: HashMap<&'static str, Zones>,
    /// Length of the longest prefix in `zones`.
    longest: usize,
    /// NANP `1NPA` to region code.
    nanp_regions: HashMap<&'static str, &'static str>,
}

/// Data lines: neither blank nor `#` comments, split at the first `|`.
fn data_lines(text: &'static str) -> impl Iterator<Item = (&'static str, &'static str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('|'))
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut zones = HashMap::new();
        let mut longest = 0;
        for (prefix, names) in data_lines(TIMEZONES) {
            // A name chrono-tz does not know is dropped; `every_zone_in_the_data_is_known`
            // keeps the shipped data free of them.
            let parsed: Box<[Tz]> = names.split('&').filter_map(|n| n.parse().ok()).collect();
            if parsed.is_empty() {
                continue;
            }
            let mut sorted: Vec<&str> = parsed.iter().map(|tz| tz.name()).collect();
            sorted.sort_unstable();
            sorted.dedup();
            longest = longest.max(prefix.len());
            zones.insert(
                prefix,
                Zones {
                    names: sorted.join(","),
                    zones: parsed,
                },
            );
        }
        let nanp_regions = data_lines(NANP_REGIONS).collect();
        Tables {
            zones,
            longest,
            nanp_regions,
        }
    })
}

/// The digits of `+<digits>`, when that is what `e164` is.
fn digits(e164: &str) -> Option<&str> {
    let digits = e164.strip_prefix('+')?;
    let plausible = !digits.is_empty()
        && digits.len() <= E164_MAX_DIGITS
        && digits.bytes().all(|b| b.is_ascii_digit());
    plausible.then_some(digits)
}

/// The longest-prefix zone entry and the region of `e164`.
fn lookup(e164: &str) -> Option<(&'static Zones, Option<&'static str>)> {
    let digits = digits(e164)?;
    let t = tables();
    let zones = (1..=digits.len().min(t.longest))
        .rev()
        .find_map(|n| t.zones.get(&digits[..n]))?;
    // Only NANP (country code 1) numbers carry a region here: its area codes belong to one
    // state or province, which is what region rules (Fla. Stat. 501.616) are about.
    let region = if digits.starts_with('1') && digits.len() >= 4 {
        t.nanp_regions.get(&digits[..4]).copied()
    } else {
        None
    };
    Some((zones, region))
}

/// Zones and region of an E.164 number (`+12125550100`): `None` when the number tells
/// nothing (not `+` and digits, or an unknown country code).
///
/// The zones are those of the longest known prefix of the number, several when that prefix
/// spans a zone boundary; the region is the ISO 3166-2 code (`US-FL`, `CA-ON`) of a NANP
/// area code that lies in one state, district, territory or province.
pub fn locate(e164: &str) -> Option<(Vec<Tz>, Option<&'static str>)> {
    lookup(e164).map(|(z, region)| (z.zones.to_vec(), region))
}

/// Like [`locate`], with the zones already spelled as [`crate::LeadGroup::zones`] (sorted
/// names joined by `,`), so the lead import builds a group without sorting per row.
pub(crate) fn locate_group(e164: &str) -> Option<(&'static str, Option<&'static str>)> {
    lookup(e164).map(|(z, region)| (z.names.as_str(), region))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(e164: &str) -> Vec<Tz> {
        locate(e164).expect("known number").0
    }

    #[test]
    fn new_york_number_is_in_new_york_state() {
        assert_eq!(
            locate("+12125550100"),
            Some((vec![chrono_tz::America::New_York], Some("US-NY")))
        );
    }

    #[test]
    fn miami_number_is_in_florida() {
        let (z, region) = locate("+13055550100").expect("known");
        assert_eq!(region, Some("US-FL"));
        assert_eq!(z, vec![chrono_tz::America::New_York]);
    }

    #[test]
    fn london_number_is_in_london() {
        assert_eq!(zones("+442071234567"), vec![chrono_tz::Europe::London]);
        assert_eq!(locate("+442071234567").expect("known").1, None);
    }

    #[test]
    fn split_zone_area_code_gives_every_zone() {
        // 605 (South Dakota) spans Central and Mountain time.
        let (z, region) = locate("+16055550100").expect("known");
        assert!(z.len() > 1, "{z:?}");
        assert!(z.contains(&chrono_tz::America::Denver));
        assert_eq!(region, Some("US-SD"));
        assert_eq!(
            locate_group("+16055550100").expect("known").0,
            "America/Denver,America/North_Dakota/Center"
        );
    }

    #[test]
    fn longer_prefix_wins_over_its_area_code() {
        // 208 (Idaho) spans Mountain and Pacific; 208-201 is on the Mountain side.
        assert_eq!(zones("+12082015555"), vec![chrono_tz::America::Denver]);
        assert!(zones("+12089995555").len() > 1);
    }

    #[test]
    fn canadian_area_code_gives_its_province() {
        assert_eq!(locate("+14165550100").expect("known").1, Some("CA-ON"));
        assert_eq!(zones("+14165550100"), vec![chrono_tz::America::Toronto]);
    }

    #[test]
    fn area_code_shared_by_provinces_has_no_region() {
        assert_eq!(locate("+19025550100").expect("known").1, None);
    }

    #[test]
    fn garbage_is_unknown() {
        for s in [
            "",
            "+",
            "12125550100",
            "+1212555010a",
            "+ 12125550100",
            "+1234567890123456",
            "sip:+12125550100",
            "+٣٣١٢٣٤٥٦٧٨٩",
        ] {
            assert_eq!(locate(s), None, "{s:?}");
        }
    }

    #[test]
    fn unknown_country_code_is_unknown() {
        // +999 is reserved (ITU-T E.164 spare code).
        assert_eq!(locate("+9991234567"), None);
    }

    #[test]
    fn every_zone_in_the_data_is_known() {
        let mut lines = 0;
        for (prefix, names) in data_lines(TIMEZONES) {
            assert!(prefix.bytes().all(|b| b.is_ascii_digit()), "{prefix}");
            for name in names.split('&') {
                assert!(name.parse::<Tz>().is_ok(), "{prefix}: {name}");
            }
            lines += 1;
        }
        assert_eq!(tables().zones.len(), lines);
    }

    #[test]
    fn every_region_line_is_a_nanp_area_code_and_a_region_code() {
        for (npa, region) in data_lines(NANP_REGIONS) {
            assert!(npa.len() == 4 && npa.starts_with('1'), "{npa}");
            assert!(
                region.starts_with("US-") || region.starts_with("CA-"),
                "{region}"
            );
            assert!(crate::definition::is_region_code(region), "{region}");
        }
        assert!(tables().nanp_regions.len() > 400);
    }
}
