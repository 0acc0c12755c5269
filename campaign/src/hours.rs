//! Calling hours: whether a lead may be called at an instant, in its own civil time
//! (every zone of a split-zone number must be inside the window), with region overrides,
//! holidays and DST from the IANA database (chrono-tz).

use crate::definition::CampaignDef;
use crate::types::{LeadGroup, OpenGroup};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The zones of a group, parsed; the campaign's default when the group names none.
pub fn group_zones(def: &CampaignDef, group: &LeadGroup) -> Vec<Tz> {
    let _ = (def, group);
    unimplemented!()
}

/// May leads of `group` be called at `at`?
pub fn is_open(def: &CampaignDef, group: &LeadGroup, at: DateTime<Utc>) -> bool {
    let _ = (def, group, at);
    unimplemented!()
}

/// The groups of `groups` open at `at`, with their region's per-number cap.
pub fn open_groups(def: &CampaignDef, groups: &[LeadGroup], at: DateTime<Utc>) -> Vec<OpenGroup> {
    let _ = (def, groups, at);
    unimplemented!()
}

/// The first instant at or after `at` when `group` opens (within 14 days), for status.
pub fn next_open(def: &CampaignDef, group: &LeadGroup, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let _ = (def, group, at);
    unimplemented!()
}
