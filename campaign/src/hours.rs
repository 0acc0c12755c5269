//! Calling hours: whether a lead may be called at an instant, in its own civil time
//! (every zone of a split-zone number must be inside the window), with region overrides,
//! holidays and DST from the IANA database (chrono-tz).
//!
//! A lead's day, weekday and holiday are those of its local date at the instant, so the
//! window of a lead in Los Angeles and one in London are the same clock times on different
//! UTC instants, and a DST change moves the UTC instants of a window, never its clock times
//! (US TSR 16 CFR 310.4(c) and Ofcom speak of the called person's local time).

use crate::definition::{CampaignDef, RegionRule, Window};
use crate::types::{LeadGroup, OpenGroup};
use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// How far [`next_open`] looks ahead.
pub const NEXT_OPEN_HORIZON: TimeDelta = TimeDelta::days(14);

/// The zones of a group, parsed; the campaign's default when the group names none.
///
/// A group whose `zones` holds a name that is not an IANA zone gets no zones at all, and
/// such a group is never open: calling a lead whose local time is unknown could be calling
/// outside its hours.
pub fn group_zones(def: &CampaignDef, group: &LeadGroup) -> Vec<Tz> {
    if group.zones.trim().is_empty() {
        return vec![def.time_zone];
    }
    group
        .zones
        .split(',')
        .map(|name| name.trim().parse::<Tz>())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default()
}

/// The window of `group`'s leads on a local date's weekday: the region rule's window on a
/// day `[hours]` gives one, else that day's; `None`: no calls that day.
fn window_on(def: &CampaignDef, rule: Option<&RegionRule>, day: chrono::Weekday) -> Option<Window> {
    let window = def.hours.on(day)?;
    Some(rule.and_then(|r| r.hours).unwrap_or(window))
}

/// Is a lead in `tz` callable at `at`?
fn open_in(def: &CampaignDef, rule: Option<&RegionRule>, tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz).naive_local();
    if def.holidays.binary_search(&local.date()).is_ok() {
        return false;
    }
    window_on(def, rule, local.weekday()).is_some_and(|w| w.contains(local.time()))
}

/// Is every zone callable at `at`? An empty list never is.
fn open_in_all(
    def: &CampaignDef,
    rule: Option<&RegionRule>,
    zones: &[Tz],
    at: DateTime<Utc>,
) -> bool {
    !zones.is_empty() && zones.iter().all(|&tz| open_in(def, rule, tz, at))
}

/// May leads of `group` be called at `at`? Every zone of the group must be inside its
/// window, in its own local time: a lead of a split-zone area code may be on either side.
pub fn is_open(def: &CampaignDef, group: &LeadGroup, at: DateTime<Utc>) -> bool {
    let rule = def.region(group.region.as_deref());
    open_in_all(def, rule, &group_zones(def, group), at)
}

/// The groups of `groups` open at `at`, with their region's per-number cap.
pub fn open_groups(def: &CampaignDef, groups: &[LeadGroup], at: DateTime<Utc>) -> Vec<OpenGroup> {
    groups
        .iter()
        .filter_map(|group| {
            let rule = def.region(group.region.as_deref());
            open_in_all(def, rule, &group_zones(def, group), at).then(|| OpenGroup {
                group: group.clone(),
                max_calls_per_24h: rule.and_then(|r| r.max_calls_per_24h),
            })
        })
        .collect()
}

/// The first instant at or after `at` when `group` opens, when that is within
/// [`NEXT_OPEN_HORIZON`] (14 days), for status.
///
/// Rather than trying every minute, it jumps from one instant where some zone's state could
/// change to the next: a window's start or end or a local midnight (a new weekday or
/// holiday) in that zone, or the zone's next UTC offset change (DST) before those. Between
/// two such instants no zone opens or closes, so the first open one found is exact.
pub fn next_open(def: &CampaignDef, group: &LeadGroup, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let rule = def.region(group.region.as_deref());
    let zones = group_zones(def, group);
    if zones.is_empty() {
        return None;
    }
    let limit = at + NEXT_OPEN_HORIZON;
    let mut t = at;
    while t <= limit {
        if open_in_all(def, rule, &zones, t) {
            return Some(t);
        }
        t = zones
            .iter()
            .map(|&tz| next_change(def, rule, tz, t))
            .min()
            .expect("zones is not empty");
    }
    None
}

/// The UTC offset of `tz` at `at`, in seconds.
fn offset_s(tz: Tz, at: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The first instant after `t` at which a lead in `tz` might open or close: the next window
/// edge or local midnight by the clock of `t`, or the zone's next offset change if one comes
/// first (the clock jumps, so edges after it fall elsewhere).
fn next_change(
    def: &CampaignDef,
    rule: Option<&RegionRule>,
    tz: Tz,
    t: DateTime<Utc>,
) -> DateTime<Utc> {
    let local: NaiveDateTime = t.with_timezone(&tz).naive_local();
    let date = local.date();
    let midnight = date
        .succ_opt()
        .expect("dates in campaign range have a next day")
        .and_time(chrono::NaiveTime::MIN);
    let mut next = midnight;
    if let Some(w) = window_on(def, rule, date.weekday()) {
        for edge in [w.start, w.end] {
            let edge = date.and_time(edge);
            if edge > local && edge < next {
                next = edge;
            }
        }
    }
    let candidate = t + (next - local);
    let before = offset_s(tz, t);
    if offset_s(tz, candidate) == before {
        return candidate;
    }
    // An offset change lies in (t, candidate]: find its first second. The span is at most a
    // day and no zone changes offset twice in a day, so the offsets at its ends tell; zones
    // change offset on whole seconds, so the search runs over Unix seconds.
    let at_second = |s: i64| DateTime::from_timestamp(s, 0).expect("within chrono's range");
    let mut lo = t.timestamp();
    let mut hi = candidate.timestamp() + i64::from(candidate.timestamp_subsec_nanos() > 0);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_s(tz, at_second(mid)) == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    at_second(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Chicago, Denver, Los_Angeles, New_York};
    use chrono_tz::Europe::London;

    fn def(extra: &str) -> CampaignDef {
        let text = format!("name = \"t\"\npool = \"p\"\n{extra}");
        CampaignDef::parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn group(zones: &str, region: Option<&str>) -> LeadGroup {
        LeadGroup {
            zones: zones.to_string(),
            region: region.map(str::to_string),
        }
    }

    /// `y-m-d h:m` local time in `tz`, as UTC (earliest reading when ambiguous).
    fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("local time exists")
            .with_timezone(&Utc)
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid")
    }

    /// `next_open` by trying every minute, to check the jumping one.
    fn next_open_by_minutes(
        def: &CampaignDef,
        g: &LeadGroup,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if is_open(def, g, at) {
            return Some(at);
        }
        let first = DateTime::from_timestamp((at.timestamp().div_euclid(60) + 1) * 60, 0)
            .expect("in range");
        (0..NEXT_OPEN_HORIZON.num_minutes())
            .map(|i| first + TimeDelta::minutes(i))
            .take_while(|t| *t <= at + NEXT_OPEN_HORIZON)
            .find(|t| is_open(def, g, *t))
    }

    const NY: &str = "America/New_York";

    #[test]
    fn new_york_lead_opens_at_nine_and_closes_at_nine_pm_local() {
        let d = def("");
        let g = group(NY, Some("US-NY"));
        // 2026-06-10 is a Wednesday, EDT (UTC-4).
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 10, 8, 59)));
        assert!(is_open(&d, &g, local(New_York, 2026, 6, 10, 9, 0)));
        assert!(is_open(&d, &g, local(New_York, 2026, 6, 10, 20, 59)));
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 10, 21, 0)));
        assert_eq!(local(New_York, 2026, 6, 10, 9, 0), utc(2026, 6, 10, 13, 0));
    }

    #[test]
    fn window_keeps_its_local_times_across_spring_forward() {
        let d = def("");
        let g = group(NY, None);
        // Saturday 2026-03-07 is EST (UTC-5); Sunday 2026-03-08 is EDT (UTC-4) from 02:00.
        assert!(!is_open(&d, &g, utc(2026, 3, 7, 13, 59)));
        assert!(is_open(&d, &g, utc(2026, 3, 7, 14, 0)));
        assert!(!is_open(&d, &g, utc(2026, 3, 8, 12, 59)));
        assert!(is_open(&d, &g, utc(2026, 3, 8, 13, 0)));
        assert!(is_open(&d, &g, utc(2026, 3, 9, 0, 59)));
        assert!(!is_open(&d, &g, utc(2026, 3, 9, 1, 0)));
    }

    #[test]
    fn window_keeps_its_local_times_across_fall_back() {
        let d = def("");
        let g = group(NY, None);
        // Saturday 2026-10-31 is EDT (UTC-4); Sunday 2026-11-01 is EST (UTC-5) from 02:00.
        assert!(!is_open(&d, &g, utc(2026, 10, 31, 12, 59)));
        assert!(is_open(&d, &g, utc(2026, 10, 31, 13, 0)));
        assert!(!is_open(&d, &g, utc(2026, 11, 1, 13, 59)));
        assert!(is_open(&d, &g, utc(2026, 11, 1, 14, 0)));
        assert!(is_open(&d, &g, utc(2026, 11, 2, 1, 59)));
        assert!(!is_open(&d, &g, utc(2026, 11, 2, 2, 0)));
    }

    #[test]
    fn new_york_los_angeles_and_london_leads_differ_at_one_instant() {
        let d = def("");
        let ny = group(NY, Some("US-NY"));
        let la = group("America/Los_Angeles", Some("US-CA"));
        let london = group("Europe/London", None);
        // 2026-06-10 13:30 UTC: 09:30 in New York, 06:30 in Los Angeles, 14:30 in London.
        let at = utc(2026, 6, 10, 13, 30);
        assert!(is_open(&d, &ny, at));
        assert!(!is_open(&d, &la, at));
        assert!(is_open(&d, &london, at));
        // 2026-06-10 21:30 UTC: 17:30, 14:30, 22:30.
        let at = utc(2026, 6, 10, 21, 30);
        assert!(is_open(&d, &ny, at));
        assert!(is_open(&d, &la, at));
        assert!(!is_open(&d, &london, at));
        let open: Vec<_> = open_groups(&d, &[ny.clone(), la, london], at)
            .into_iter()
            .map(|o| o.group)
            .collect();
        assert_eq!(open.len(), 2);
        assert_eq!(local(Los_Angeles, 2026, 6, 10, 14, 30), at);
        assert_eq!(local(London, 2026, 6, 10, 22, 30), at);
    }

    #[test]
    fn split_zone_lead_is_open_only_while_both_zones_are() {
        let d = def("");
        let g = group("America/Chicago,America/Denver", Some("US-SD"));
        // 09:00 Chicago is 08:00 Denver: still closed.
        assert!(!is_open(&d, &g, local(Chicago, 2026, 6, 10, 9, 0)));
        assert!(is_open(&d, &g, local(Denver, 2026, 6, 10, 9, 0)));
        // 21:00 Chicago closes the group though Denver is at 20:00.
        assert!(is_open(&d, &g, local(Chicago, 2026, 6, 10, 20, 59)));
        assert!(!is_open(&d, &g, local(Chicago, 2026, 6, 10, 21, 0)));
        assert_eq!(
            next_open(&d, &g, local(Chicago, 2026, 6, 10, 7, 0)),
            Some(local(Denver, 2026, 6, 10, 9, 0))
        );
        assert_eq!(group_zones(&d, &g), vec![Chicago, Denver]);
    }

    #[test]
    fn florida_rule_narrows_the_window_and_caps_calls() {
        let d =
            def("[[region]]\nmatch = \"US-FL\"\nhours = \"08:00-20:00\"\nmax_calls_per_24h = 3\n");
        let fl = group(NY, Some("US-FL"));
        let ny = group(NY, Some("US-NY"));
        // Fla. Stat. 501.616(6)(a): 8 a.m. to 8 p.m. local.
        assert!(is_open(&d, &fl, local(New_York, 2026, 6, 10, 8, 0)));
        assert!(!is_open(&d, &ny, local(New_York, 2026, 6, 10, 8, 0)));
        assert!(is_open(&d, &fl, local(New_York, 2026, 6, 10, 19, 59)));
        assert!(!is_open(&d, &fl, local(New_York, 2026, 6, 10, 20, 0)));
        assert!(is_open(&d, &ny, local(New_York, 2026, 6, 10, 20, 0)));
        let open = open_groups(
            &d,
            &[fl.clone(), ny.clone()],
            local(New_York, 2026, 6, 10, 12, 0),
        );
        assert_eq!(
            open,
            vec![
                OpenGroup {
                    group: fl,
                    max_calls_per_24h: Some(3)
                },
                OpenGroup {
                    group: ny,
                    max_calls_per_24h: None
                },
            ]
        );
    }

    #[test]
    fn region_rule_keeps_days_without_hours_closed() {
        let d = def("[hours]\nmon-fri = \"09:00-21:00\"\n[[region]]\nmatch = \"US-FL\"\nhours = \"08:00-20:00\"\n");
        let fl = group(NY, Some("US-FL"));
        // 2026-06-13 is a Saturday.
        assert!(!is_open(&d, &fl, local(New_York, 2026, 6, 13, 12, 0)));
        assert!(is_open(&d, &fl, local(New_York, 2026, 6, 12, 8, 0)));
    }

    #[test]
    fn holiday_is_closed_in_the_lead_s_local_date() {
        let d = def("holidays = [\"2026-12-25\"]\n");
        let ny = group(NY, None);
        let london = group("Europe/London", None);
        assert!(!is_open(&d, &ny, local(New_York, 2026, 12, 25, 12, 0)));
        assert!(is_open(&d, &ny, local(New_York, 2026, 12, 24, 20, 0)));
        // 2026-12-26 01:00 UTC is still the 25th (20:00) in New York, the 26th in London.
        let at = utc(2026, 12, 26, 1, 0);
        assert!(!is_open(&d, &ny, at));
        assert_eq!(
            next_open(&d, &ny, at),
            Some(local(New_York, 2026, 12, 26, 9, 0))
        );
        assert!(!is_open(&d, &london, at));
        assert!(is_open(&d, &london, utc(2026, 12, 26, 9, 0)));
    }

    #[test]
    fn day_without_hours_is_closed() {
        let d = def("[hours]\nmon-fri = \"09:00-21:00\"\nsat = \"10:00-18:00\"\n");
        let g = group(NY, None);
        // 2026-06-13 Saturday, 2026-06-14 Sunday.
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 13, 9, 30)));
        assert!(is_open(&d, &g, local(New_York, 2026, 6, 13, 10, 0)));
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 14, 12, 0)));
        assert_eq!(
            next_open(&d, &g, local(New_York, 2026, 6, 13, 18, 0)),
            Some(local(New_York, 2026, 6, 15, 9, 0))
        );
    }

    #[test]
    fn group_without_zones_uses_the_campaign_zone() {
        let d = def("time_zone = \"America/Los_Angeles\"\n");
        let g = group("", None);
        assert_eq!(group_zones(&d, &g), vec![Los_Angeles]);
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 10, 10, 0)));
        assert!(is_open(&d, &g, local(Los_Angeles, 2026, 6, 10, 10, 0)));
    }

    #[test]
    fn group_with_an_unknown_zone_is_never_open() {
        let d = def("");
        let g = group("America/New_York,Mars/Olympus_Mons", None);
        assert!(group_zones(&d, &g).is_empty());
        assert!(!is_open(&d, &g, local(New_York, 2026, 6, 10, 12, 0)));
        assert_eq!(next_open(&d, &g, utc(2026, 6, 10, 0, 0)), None);
    }

    #[test]
    fn next_open_is_now_when_open() {
        let d = def("");
        let at = local(New_York, 2026, 6, 10, 12, 0);
        assert_eq!(next_open(&d, &group(NY, None), at), Some(at));
    }

    #[test]
    fn next_open_gives_up_after_fourteen_days() {
        let d = def("holidays = [\"2026-06-10\"]\n[hours]\nwed = \"09:00-10:00\"\n");
        let g = group(NY, None);
        let at = local(New_York, 2026, 6, 10, 9, 30);
        // Next Wednesdays: the 17th and the 24th; 14 days from the 10th at 09:30 is the 24th
        // at 09:30, after the window opened at 09:00.
        assert_eq!(
            next_open(&d, &g, at),
            Some(local(New_York, 2026, 6, 17, 9, 0))
        );
        let d =
            def("holidays = [\"2026-06-10\", \"2026-06-17\"]\n[hours]\nwed = \"09:00-10:00\"\n");
        assert_eq!(
            next_open(&d, &g, at),
            Some(local(New_York, 2026, 6, 24, 9, 0))
        );
        let d = def(
            "holidays = [\"2026-06-10\", \"2026-06-17\", \"2026-06-24\"]\n[hours]\nwed = \"09:00-10:00\"\n",
        );
        assert_eq!(next_open(&d, &g, at), None);
    }

    #[test]
    fn next_open_matches_a_minute_by_minute_search() {
        let defs = [
            def(""),
            def("[hours]\nmon-fri = \"09:00-21:00\"\nsat = \"10:00-18:00\"\n[[region]]\nmatch = \"US-FL\"\nhours = \"08:00-20:00\"\n"),
            def("holidays = [\"2026-03-09\", \"2026-11-02\"]\n[hours]\nsun = \"01:30-02:30\"\nmon = \"02:15-03:00\"\n"),
        ];
        let groups = [
            group(NY, None),
            group(NY, Some("US-FL")),
            group("America/Chicago,America/Denver", None),
            group("Europe/London", None),
            group("America/New_York,Europe/London", None),
            group("Asia/Kolkata,Australia/Lord_Howe", None),
        ];
        let starts = [
            utc(2026, 3, 7, 23, 17),
            utc(2026, 3, 8, 6, 59),
            utc(2026, 3, 29, 0, 30),
            utc(2026, 10, 31, 22, 0),
            utc(2026, 11, 1, 5, 30) + TimeDelta::seconds(17),
        ];
        for d in &defs {
            for g in &groups {
                for &at in &starts {
                    assert_eq!(
                        next_open(d, g, at),
                        next_open_by_minutes(d, g, at),
                        "{g:?} from {at} with {:?}",
                        d.hours
                    );
                }
            }
        }
    }

    #[test]
    fn window_inside_the_repeated_hour_opens_on_the_first_reading() {
        // 01:30 local on 2026-11-01 happens twice in New York (EDT, then EST).
        let d = def("[hours]\nsun = \"01:30-01:45\"\n");
        let g = group(NY, None);
        let first = utc(2026, 11, 1, 5, 30);
        assert!(is_open(&d, &g, first));
        assert!(is_open(&d, &g, utc(2026, 11, 1, 6, 30)));
        assert_eq!(next_open(&d, &g, utc(2026, 11, 1, 0, 0)), Some(first));
        assert_eq!(
            next_open(&d, &g, utc(2026, 11, 1, 5, 45)),
            Some(utc(2026, 11, 1, 6, 30))
        );
    }

    #[test]
    fn window_in_the_skipped_hour_opens_when_the_clock_jumps_into_it() {
        // 02:00-03:00 local does not exist in New York on 2026-03-08: 01:59 EST is followed
        // by 03:00 EDT. A 02:15-03:30 window opens at the jump, 03:00 EDT.
        let d = def("[hours]\nsun = \"02:15-03:30\"\n");
        let g = group(NY, None);
        assert_eq!(
            next_open(&d, &g, utc(2026, 3, 8, 0, 0)),
            Some(utc(2026, 3, 8, 7, 0))
        );
    }
}
