//! Fuzz harnesses for hubsync's untrusted-input parsers, shared by the cargo-fuzz targets in
//! `fuzz_targets/` and by the `cargo test` property tests in `tests/fuzz_targets.rs` (which
//! include this file as a module).
//!
//! Each harness takes raw bytes, decodes them into the input it needs, and panics only when a
//! property breaks (a panic inside the code under test is a finding too):
//! - [`webhook_delivery`]: `parse_delivery` never panics, and what it accepts is a JSON array
//!   with one event per element;
//! - [`webhook_signature`]: `SignatureVerifier` never panics on any header values, accepts only
//!   the true signature inside the replay window, and refuses any change of body, method, URI or
//!   timestamp;
//! - [`filter_params`]: the unified API's filter parser never panics, and what it accepts
//!   translates to SQL and to HubSpot `filterGroups` within HubSpot's limits (or is refused);
//! - [`mapping_files`]: the mapping loader, given a corrupted or replaced mapping file, either
//!   loads or fails with an error naming that file — it never panics.

use std::time::Duration;

use hubsync_core::ObjectType;
use hubsync_hubspot::webhooks::{
    SignatureError, SignatureVerifier, parse_delivery, parse_subscription_type, sign_v3,
};
use hubsync_mapping::{MappingOptions, Mappings};
use secrecy::SecretString;

/// The fixed clock of the signature harness (epoch ms).
pub const NOW_MS: i64 = 1_780_000_000_000;
/// HubSpot's replay window.
pub const WINDOW_MS: i64 = 300_000;

/// Splits `data` into `n` parts at 0x00 bytes (missing parts are empty).
fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == 0).collect();
    out.resize(n, &[]);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `parse_delivery` on arbitrary bytes.
pub fn webhook_delivery(data: &[u8]) {
    if let Ok(events) = parse_delivery(data) {
        let value: serde_json::Value =
            serde_json::from_slice(data).expect("an accepted delivery is JSON");
        let elements = value
            .as_array()
            .expect("an accepted delivery is an array")
            .len();
        assert_eq!(events.len(), elements, "one event per array element");
        for event in &events {
            let _ = event.is_known();
            let _ = format!("{event:?}");
        }
    }
    let whole = text(data);
    let (kind, type_id) = whole.split_once('\u{0}').unwrap_or((&whole, ""));
    let _ = parse_subscription_type(kind, Some(type_id));
    let _ = parse_subscription_type(kind, None);
}

/// `SignatureVerifier` on arbitrary parts: secret, method, URI, body, signature, timestamp text,
/// and a byte choosing the signing time.
pub fn webhook_signature(data: &[u8]) {
    let p = parts(data, 7);
    let secret = text(p[0]);
    let (method, uri, body) = (text(p[1]), text(p[2]), p[3]);
    let (signature, timestamp) = (text(p[4]), text(p[5]));
    let verifier = SignatureVerifier::new(SecretString::from(secret.clone())).allow_legacy(true);
    let key = SecretString::from(secret.clone());

    // Arbitrary header values: never a panic, and never accepted unless they are the truth.
    if verifier
        .verify_v3(&method, &uri, body, &timestamp, &signature, NOW_MS)
        .is_ok()
    {
        let ts: i64 = timestamp.trim().parse().expect("accepted timestamp parses");
        assert_eq!(
            signature.trim(),
            sign_v3(&key, &method, &uri, body, ts),
            "accepted a signature that is not the true one"
        );
    }
    let _ = verifier.verify_v1(body, &signature);
    let _ = verifier.verify_v2(&method, &uri, body, &signature);

    // A true signature, made some time before or after now.
    let skew = i64::from(p[6].first().copied().unwrap_or(0)) * 5_000 - 640_000;
    let ts = NOW_MS + skew;
    let good = sign_v3(&key, &method, &uri, body, ts);
    let result = verifier.verify_v3(&method, &uri, body, &ts.to_string(), &good, NOW_MS);
    if skew.abs() <= WINDOW_MS {
        assert!(
            result.is_ok(),
            "a true signature {}s old was refused: {result:?}",
            -skew / 1000
        );
        // Any change to what is signed is refused.
        let mut tampered = body.to_vec();
        match tampered.first_mut() {
            Some(b) => *b ^= 0x01,
            None => tampered.push(b'x'),
        }
        assert!(
            verifier
                .verify_v3(&method, &uri, &tampered, &ts.to_string(), &good, NOW_MS)
                .is_err(),
            "tampered body accepted"
        );
        let other_method = format!("{method}X");
        assert!(
            verifier
                .verify_v3(&other_method, &uri, body, &ts.to_string(), &good, NOW_MS)
                .is_err(),
            "other method accepted"
        );
        let other_uri = format!("{uri}/x");
        assert!(
            verifier
                .verify_v3(&method, &other_uri, body, &ts.to_string(), &good, NOW_MS)
                .is_err(),
            "other URI accepted"
        );
        let other_ts = (ts - 1).to_string();
        assert!(
            verifier
                .verify_v3(&method, &uri, body, &other_ts, &good, NOW_MS)
                .is_err(),
            "other timestamp accepted"
        );
        let wrong = SignatureVerifier::new(SecretString::from(format!("{secret}x")));
        assert!(
            wrong
                .verify_v3(&method, &uri, body, &ts.to_string(), &good, NOW_MS)
                .is_err(),
            "other secret accepted"
        );
    } else {
        assert!(
            matches!(result, Err(SignatureError::Stale { .. })),
            "a signature {}s off was not refused as stale: {result:?}",
            skew / 1000
        );
    }
}

/// The mappings the filter harness parses against (the shipped ones).
pub fn shipped_mappings() -> Mappings {
    Mappings::load(&MappingOptions {
        workers: 1,
        ..MappingOptions::default()
    })
    .expect("shipped mappings load")
}

/// The unified API's filter parser on a query string: the first byte picks the object type, the
/// rest is `name=value&name[op]=value…` (raw, as the API hands it over after URL decoding).
pub fn filter_params(mappings: &Mappings, data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let ty = ObjectType::ALL[usize::from(*first) % ObjectType::ALL.len()];
    let query = text(rest);
    let params: Vec<(&str, &str)> = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect();
    let rules = mappings.filter_rules(ty);
    for (key, value) in &params {
        let _ = rules.parse_one(key, value);
    }
    if let Ok(filters) = rules.parse(params.iter().copied()) {
        let _ = rules.to_sql_filters(&filters);
        if let Ok(groups) = rules.to_filter_groups(&filters) {
            let total: usize = groups.iter().map(|g| g.filters.len()).sum();
            assert!(
                groups.len() <= 5,
                "{} filter groups exceed HubSpot's 5",
                groups.len()
            );
            assert!(
                groups.iter().all(|g| g.filters.len() <= 6),
                "a group exceeds HubSpot's 6 filters"
            );
            assert!(total <= 18, "{total} filters exceed HubSpot's 18");
            let _ = serde_json::to_string(&groups);
        }
    }
}

/// The mapping loader with one shipped file corrupted: the first byte picks the file, the second
/// how (0: replaced by the rest; 1: the rest inserted at an offset; 2: the file cut at an offset
/// and the rest appended), the next two bytes the offset.
pub fn mapping_files(data: &[u8]) {
    let [which, how, hi, lo, rest @ ..] = data else {
        return;
    };
    let (name, shipped) =
        hubsync_mapping::EMBEDDED[usize::from(*which) % hubsync_mapping::EMBEDDED.len()];
    let insert = text(rest);
    let at = |s: &str| {
        let mut i = (usize::from(*hi) << 8 | usize::from(*lo)) % (s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let contents = match how % 3 {
        0 => insert,
        1 => {
            let i = at(shipped);
            format!("{}{insert}{}", &shipped[..i], &shipped[i..])
        }
        _ => format!("{}{insert}", &shipped[..at(shipped)]),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(name), contents).expect("write mapping file");
    let options = MappingOptions {
        dir: Some(dir.path().to_owned()),
        workers: 1,
        timeout_ms: 200,
        ..MappingOptions::default()
    };
    match Mappings::load(&options) {
        Ok(mappings) => drop(mappings),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains(name),
                "a load error does not name the broken file {name}: {message}"
            );
        }
    }
    // Give the evaluation threads of a loaded set time to stop before the next input.
    std::thread::sleep(Duration::from_millis(0));
}
