//! Records in the flat unified shape, and their sync status.
//!
//! A record is its unified fields ([`FieldMap::to_unified`]) plus `id` (the local id, as a
//! string), `hubspot_id`, `created_at`, `updated_at` and a `sync` object:
//! - `synced`: the record's synced fields equal the last state both sides agreed on (the merge
//!   base HubSpot acknowledged, or the state last applied from HubSpot);
//! - `failed`: a write of the record was dead-lettered after its last change, with the reason;
//! - `pending`: anything else (a write waits in the outbox, or was never pushed).

use std::collections::HashMap;

use hubsync_core::record::CUSTOM_PREFIX;
use hubsync_core::{FieldMap, LocalId, ObjectType, PortalId};
use hubsync_engine::ASSOCIATION_FIELDS;
use hubsync_mapping::Mappings;
use hubsync_store::{DeadLetter, LocalRecord, Millis, Store, StoreError, SyncState};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// Dead letters scanned (newest first) to explain records that are not synced.
const DEAD_LETTER_SCAN: u32 = 500;

/// Whether a record's last change reached HubSpot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Waiting in the outbox, or not pushed yet.
    Pending,
    /// HubSpot holds the record's current fields.
    Synced,
    /// HubSpot refused the last write (see the reason).
    Failed,
}

impl SyncStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Failed => "failed",
        }
    }
}

/// A record's sync status as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncView {
    /// The status.
    pub status: SyncStatus,
    /// When the record was last synced (epoch ms).
    pub synced_at: Option<Millis>,
    /// For `failed`: HubSpot's (or the mapping's) reason.
    pub reason: Option<String>,
    /// For `failed`: the dead letter's category.
    pub category: Option<String>,
}

impl SyncView {
    /// The `sync` member of a record.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Epoch milliseconds as RFC 3339 in UTC with milliseconds (`2026-12-03T17:00:00.000Z`).
/// Years outside 0–9999 are clamped to that range's ends (RFC 3339 has four-digit years).
pub fn rfc3339(ms: Millis) -> String {
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN, MAX);
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // Written digit by digit: this runs three times per record of every list page, and the
    // general formatter cost more than the rest of a record's rendering.
    let (year, month, day) = t.to_calendar_date();
    let mut out = [0u8; 24];
    let mut put = |at: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year.unsigned_abs(), 4);
    put(5, u32::from(u8::from(month)), 2);
    put(8, u32::from(day), 2);
    put(11, u32::from(t.hour()), 2);
    put(14, u32::from(t.minute()), 2);
    put(17, u32::from(t.second()), 2);
    put(20, u32::from(t.millisecond()), 3);
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        out[at] = c;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// A local record in the unified shape.
pub fn render(record: &LocalRecord, sync: &SyncView) -> Value {
    serde_json::to_value(Unified { record, sync }).unwrap_or(Value::Null)
}

/// A record in the unified shape, serialised straight from the record (a list page writes
/// its JSON without building a tree of values first): the unified fields with
/// `custom_fields` nested again, then `id`, `hubspot_id`, `created_at`, `updated_at`,
/// `deleted` (only when true) and `sync`.
#[derive(Debug, Clone, Copy)]
pub struct Unified<'a> {
    /// The record.
    pub record: &'a LocalRecord,
    /// Its sync status.
    pub sync: &'a SyncView,
}

impl Serialize for Unified<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The `custom_fields.` entries of a field map, as one object.
        struct Custom<'a>(&'a FieldMap);
        impl Serialize for Custom<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(
                    self.0
                        .iter()
                        .filter_map(|(k, v)| k.strip_prefix(CUSTOM_PREFIX).map(|name| (name, v))),
                )
            }
        }
        let record = self.record;
        let mut map = serializer.serialize_map(None)?;
        let mut custom = false;
        for (key, value) in record.fields.iter() {
            if key.starts_with(CUSTOM_PREFIX) {
                custom = true;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        if custom {
            map.serialize_entry("custom_fields", &Custom(&record.fields))?;
        }
        map.serialize_entry("id", &record.local_id.get().to_string())?;
        map.serialize_entry("hubspot_id", &record.hubspot_id.map(|id| id.to_string()))?;
        map.serialize_entry("created_at", &rfc3339(record.created_at))?;
        map.serialize_entry("updated_at", &rfc3339(record.updated_at))?;
        if record.deleted {
            map.serialize_entry("deleted", &true)?;
        }
        map.serialize_entry("sync", self.sync)?;
        map.end()
    }
}

impl Serialize for SyncView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("synced_at", &self.synced_at.map(rfc3339))?;
        map.serialize_entry("reason", &self.reason)?;
        map.serialize_entry("category", &self.category)?;
        map.end()
    }
}

/// The fields hubsync syncs as properties, in canonical form: what the merge base holds once
/// HubSpot has the record. `None` when the record cannot be mapped.
pub fn synced_fields(mappings: &Mappings, ty: ObjectType, fields: &FieldMap) -> Option<FieldMap> {
    let properties: FieldMap = fields
        .iter()
        .filter(|(k, _)| !ASSOCIATION_FIELDS.contains(k))
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    mappings.normalize(ty, &properties).ok()
}

/// Whether HubSpot holds the record as it is now.
fn is_synced(
    mappings: &Mappings,
    ty: ObjectType,
    record: &LocalRecord,
    state: Option<&SyncState>,
) -> bool {
    if record.deleted {
        // The archive was acknowledged (or the record never reached HubSpot).
        return state.is_none();
    }
    let Some(base) = state.and_then(|s| s.base.as_ref()) else {
        return false;
    };
    // The base is canonical and canonical form is a fixed point of `normalize`: a row that
    // holds the base exactly (every row the inbound path wrote, every acknowledged API write)
    // is synced without normalising it, which is most of a list page's CPU otherwise.
    let properties = record
        .fields
        .iter()
        .filter(|(k, _)| !ASSOCIATION_FIELDS.contains(k));
    properties.eq(base.iter())
        || synced_fields(mappings, ty, &record.fields).is_some_and(|fields| &fields == base)
}

/// The dead letter that explains a record, if one was written after its last change.
pub fn failure_of<'a>(
    letters: &'a [DeadLetter],
    ty: ObjectType,
    record: &LocalRecord,
) -> Option<&'a DeadLetter> {
    letters.iter().find(|d| {
        d.letter.object_type == Some(ty)
            && d.letter.local_id == Some(record.local_id)
            && d.created_at >= record.updated_at
    })
}

/// The sync status of each record, in order: one sync-state query, and one dead-letter scan
/// when some record is not synced.
pub async fn sync_views(
    store: &dyn Store,
    mappings: &Mappings,
    portal: PortalId,
    ty: ObjectType,
    records: &[LocalRecord],
) -> Result<Vec<SyncView>, StoreError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<LocalId> = records.iter().map(|r| r.local_id).collect();
    let states: HashMap<LocalId, SyncState> = store
        .get_sync_states(portal, ty, &ids)
        .await?
        .into_iter()
        .map(|s| (s.local_id, s))
        .collect();
    let mut views: Vec<SyncView> = records
        .iter()
        .map(|r| {
            let state = states.get(&r.local_id);
            SyncView {
                status: if is_synced(mappings, ty, r, state) {
                    SyncStatus::Synced
                } else {
                    SyncStatus::Pending
                },
                synced_at: state.and_then(|s| s.synced_at),
                reason: None,
                category: None,
            }
        })
        .collect();
    if views.iter().any(|v| v.status == SyncStatus::Pending) {
        let letters = store
            .list_dead_letters(portal, None, DEAD_LETTER_SCAN)
            .await?;
        for (view, record) in views.iter_mut().zip(records) {
            if view.status != SyncStatus::Pending {
                continue;
            }
            if let Some(letter) = failure_of(&letters, ty, record) {
                view.status = SyncStatus::Failed;
                view.reason = Some(letter.letter.reason.clone());
                view.category = Some(letter.letter.category.clone());
            }
        }
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    /// The general formatter, which the hand-written one replaces.
    fn reference(ms: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .expect("in range");
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.format(&format).expect("format")
    }

    #[test]
    fn rfc3339_matches_the_general_formatter() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_403_600_123), "2026-12-04T17:00:00.123Z");
        let mut ms: i64 = -62_167_219_200_000;
        while ms < 253_402_300_799_999 {
            assert_eq!(rfc3339(ms), reference(ms), "{ms}");
            ms += 77_777_777_771;
        }
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
    }
}
