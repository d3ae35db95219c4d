//! Webhook signature verification (HubSpot signature versions v1, v2 and v3).
//!
//! Verification works on the raw bytes of the request, before any parsing, and compares in
//! constant time. v3 is always accepted; v1 and v2 (plain SHA-256, no timestamp, so no replay
//! protection) only when [`SignatureVerifier::allow_legacy`] turned them on.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The v3 signature header (base64 HMAC-SHA256).
pub const SIGNATURE_V3_HEADER: &str = "x-hubspot-signature-v3";
/// The v3 request timestamp header (epoch milliseconds).
pub const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// The v1/v2 signature header (hex SHA-256).
pub const SIGNATURE_HEADER: &str = "x-hubspot-signature";
/// Names the scheme of [`SIGNATURE_HEADER`]: `v1` or `v2`.
pub const SIGNATURE_VERSION_HEADER: &str = "x-hubspot-signature-version";

/// HubSpot's replay window for v3 signatures.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

/// Which scheme authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `SHA256(secret + body)`, hex.
    V1,
    /// `SHA256(secret + method + uri + body)`, hex.
    V2,
    /// `HMAC-SHA256(secret, method + uri + body + timestamp)`, base64.
    V3,
}

/// Why a request was not accepted as signed by HubSpot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header this verifier accepts was present.
    #[error("missing webhook signature")]
    Missing,
    /// The v3 signature came without a usable timestamp header.
    #[error("missing or malformed x-hubspot-request-timestamp")]
    BadTimestamp,
    /// The timestamp is outside the replay window (too old, or too far in the future).
    #[error("webhook timestamp outside the allowed window ({age_ms} ms off)")]
    Stale {
        /// How far the timestamp is from now, in milliseconds (positive: in the past).
        age_ms: i64,
    },
    /// The signature does not match.
    #[error("webhook signature mismatch")]
    Mismatch,
    /// A v1/v2 signature arrived but legacy schemes are disabled, or the version is unknown.
    #[error("signature version `{0}` not accepted")]
    VersionNotAccepted(String),
}

/// The parts of an incoming request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method, upper case (`POST`).
    pub method: &'a str,
    /// The full URI as HubSpot called it, scheme and host included
    /// (`https://example.com/hubspot/webhooks?x=1`). Behind a proxy this is the external URL.
    pub uri: &'a str,
    /// The raw, unparsed request body.
    pub body: &'a [u8],
    /// The request headers.
    pub headers: &'a http::HeaderMap,
}

/// Verifies HubSpot webhook signatures with one app's client secret.
#[derive(Clone)]
pub struct SignatureVerifier {
    secret: SecretString,
    allow_legacy: bool,
    max_age: Duration,
}

impl fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secret", &"[redacted]")
            .field("allow_legacy", &self.allow_legacy)
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl SignatureVerifier {
    /// A verifier that accepts v3 signatures only, with HubSpot's 5-minute replay window.
    pub fn new(client_secret: SecretString) -> Self {
        SignatureVerifier {
            secret: client_secret,
            allow_legacy: false,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// Also accept v1/v2 signatures when no v3 signature is present.
    pub fn allow_legacy(mut self, allow: bool) -> Self {
        self.allow_legacy = allow;
        self
    }

    /// Changes the replay window (default 5 minutes).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Verifies a request by whichever signature it carries: v3 when present, otherwise v1/v2
    /// if legacy schemes are enabled. `now_ms` is the current time in epoch milliseconds.
    pub fn verify(
        &self,
        req: &SignedRequest<'_>,
        now_ms: i64,
    ) -> Result<SignatureVersion, SignatureError> {
        if let Some(signature) = header(req.headers, SIGNATURE_V3_HEADER) {
            let timestamp =
                header(req.headers, TIMESTAMP_HEADER).ok_or(SignatureError::BadTimestamp)?;
            self.verify_v3(req.method, req.uri, req.body, timestamp, signature, now_ms)?;
            return Ok(SignatureVersion::V3);
        }
        let Some(signature) = header(req.headers, SIGNATURE_HEADER) else {
            return Err(SignatureError::Missing);
        };
        let version = header(req.headers, SIGNATURE_VERSION_HEADER).unwrap_or("v1");
        if !self.allow_legacy {
            return Err(SignatureError::VersionNotAccepted(version.to_owned()));
        }
        match version {
            "v1" => self
                .verify_v1(req.body, signature)
                .map(|()| SignatureVersion::V1),
            "v2" => self
                .verify_v2(req.method, req.uri, req.body, signature)
                .map(|()| SignatureVersion::V2),
            other => Err(SignatureError::VersionNotAccepted(other.to_owned())),
        }
    }

    /// Verifies a v3 signature: base64 `HMAC-SHA256(secret, method + uri + body + timestamp)`
    /// with the URI's reserved-character escapes decoded, and a timestamp within the window.
    pub fn verify_v3(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        timestamp: &str,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        let age_ms = now_ms.saturating_sub(ts);
        let max_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        if age_ms > max_ms || age_ms < -max_ms {
            return Err(SignatureError::Stale { age_ms });
        }
        let expected = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::Mismatch)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .map_err(|_| SignatureError::Mismatch)?;
        mac.update(method.as_bytes());
        mac.update(decode_v3_uri(uri).as_bytes());
        mac.update(body);
        mac.update(timestamp.trim().as_bytes());
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// Verifies a v1 signature: hex `SHA256(secret + body)`.
    pub fn verify_v1(&self, body: &[u8], signature: &str) -> Result<(), SignatureError> {
        let digest = Sha256::new()
            .chain_update(self.secret.expose_secret().as_bytes())
            .chain_update(body)
            .finalize();
        compare_hex(&digest, signature)
    }

    /// Verifies a v2 signature: hex `SHA256(secret + method + uri + body)`, the URI exactly as
    /// HubSpot called it.
    pub fn verify_v2(
        &self,
        method: &str,
        uri: &str,
        body: &[u8],
        signature: &str,
    ) -> Result<(), SignatureError> {
        let digest = Sha256::new()
            .chain_update(self.secret.expose_secret().as_bytes())
            .chain_update(method.as_bytes())
            .chain_update(uri.as_bytes())
            .chain_update(body)
            .finalize();
        compare_hex(&digest, signature)
    }
}

fn header<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn compare_hex(digest: &[u8], signature: &str) -> Result<(), SignatureError> {
    let given =
        hex::decode(signature.trim().to_ascii_lowercase()).map_err(|_| SignatureError::Mismatch)?;
    if given.len() == digest.len() && bool::from(given.ct_eq(digest)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The v3 URI normalisation: HubSpot signs the URI with exactly these escapes decoded, and no
/// others (`%20` stays `%20`).
pub fn decode_v3_uri(uri: &str) -> String {
    const ESCAPES: [(&str, char); 12] = [
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        match ESCAPES.iter().find(|(escape, _)| tail.starts_with(escape)) {
            Some((escape, ch)) => {
                out.push(*ch);
                rest = &tail[escape.len()..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Computes a v3 signature (for tests, emulators and re-signing). Never log the result
/// together with the secret.
pub fn sign_v3(
    secret: &SecretString,
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp_ms: i64,
) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty tag anyway.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(method.as_bytes());
    mac.update(decode_v3_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const V1_SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const V1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const V1_SIG: &str = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";

    const V3_SECRET: &str = "cfc68c0b-4b4e-4ef8-b764-95350e4ea479";
    const V3_URI: &str = "https://webhook.site/335453f5-94b3-49d9-b684-a55354d4b8df";
    const V3_BODY: &str = r#"[{"eventId":531833541,"subscriptionId":3923621,"portalId":48807704,"appId":16111050,"occurredAt":1752613920733,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":138017612137,"changeFlag":"CREATED","changeSource":"CRM_UI","sourceId":"userId:76023669"}]"#;
    const V3_TS: i64 = 1752613922216;
    const V3_SIG: &str = "gbj1XPRvUt0noT7i7fXfTzOD4sLzQmf0VT28ZYq0EYg=";

    fn verifier(secret: &str) -> SignatureVerifier {
        SignatureVerifier::new(SecretString::from(secret))
    }

    fn v3_headers(sig: &str, ts: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_V3_HEADER, HeaderValue::from_str(sig).unwrap());
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_str(&ts.to_string()).unwrap(),
        );
        h
    }

    #[test]
    fn v1_digest_test_vector_verifies() {
        assert_eq!(
            verifier(V1_SECRET).verify_v1(V1_BODY.as_bytes(), V1_SIG),
            Ok(())
        );
        assert_eq!(
            verifier(V1_SECRET).verify_v1(V1_BODY.as_bytes(), &V1_SIG.to_uppercase()),
            Ok(())
        );
    }

    #[test]
    fn v2_digest_test_vectors_verify() {
        let v = verifier(V1_SECRET);
        let uri = "https://www.example.com/webhook_uri";
        assert_eq!(
            v.verify_v2(
                "GET",
                uri,
                b"",
                "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
            ),
            Ok(())
        );
        assert_eq!(
            v.verify_v2(
                "POST",
                uri,
                br#"{"example_field":"example_value"}"#,
                "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
            ),
            Ok(())
        );
    }

    #[test]
    fn v3_digest_test_vector_verifies_within_the_window() {
        let v = verifier(V3_SECRET);
        let headers = v3_headers(V3_SIG, V3_TS);
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(v.verify(&req, V3_TS + 1_000), Ok(SignatureVersion::V3));
        assert_eq!(
            sign_v3(
                &SecretString::from(V3_SECRET),
                "POST",
                V3_URI,
                V3_BODY.as_bytes(),
                V3_TS
            ),
            V3_SIG
        );
    }

    #[test]
    fn v3_rejects_a_forged_body_a_wrong_secret_and_a_garbled_signature() {
        let headers = v3_headers(V3_SIG, V3_TS);
        let forged = V3_BODY.replace("CRM_UI", "API");
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: forged.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS),
            Err(SignatureError::Mismatch)
        );

        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier("another-secret").verify(&req, V3_TS),
            Err(SignatureError::Mismatch)
        );

        let garbled = v3_headers("not base64 at all!", V3_TS);
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &garbled,
        };
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v3_rejects_a_timestamp_older_than_five_minutes_even_if_correctly_signed() {
        let headers = v3_headers(V3_SIG, V3_TS);
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        let six_minutes = 6 * 60 * 1000;
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS + six_minutes),
            Err(SignatureError::Stale {
                age_ms: six_minutes
            })
        );
        assert!(matches!(
            verifier(V3_SECRET).verify(&req, V3_TS - six_minutes),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn v3_signature_with_a_replaced_timestamp_fails() {
        let headers = v3_headers(V3_SIG, V3_TS + 1);
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v3_missing_or_garbage_timestamp_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_V3_HEADER, HeaderValue::from_static(V3_SIG));
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS),
            Err(SignatureError::BadTimestamp)
        );
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_static("yesterday"));
        let req = SignedRequest {
            method: "POST",
            uri: V3_URI,
            body: V3_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V3_SECRET).verify(&req, V3_TS),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn v3_uri_decodes_only_the_listed_escapes() {
        assert_eq!(
            decode_v3_uri(
                "https://h.example/a%3Ab%2Fc?x=%40y%21%24%27%28%29%2A%2C%3B%3F&s=%20%2B%25"
            ),
            "https://h.example/a:b/c?x=@y!$'()*,;?&s=%20%2B%25"
        );
        let secret = SecretString::from("s3cret");
        let encoded = "https://h.example/hook?email=a%40b.com";
        let ts = 1_700_000_000_000;
        let sig = sign_v3(
            &secret,
            "POST",
            "https://h.example/hook?email=a@b.com",
            b"[]",
            ts,
        );
        assert_eq!(
            SignatureVerifier::new(secret).verify_v3(
                "POST",
                encoded,
                b"[]",
                &ts.to_string(),
                &sig,
                ts
            ),
            Ok(())
        );
    }

    #[test]
    fn legacy_signatures_are_refused_unless_enabled() {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_static(V1_SIG));
        headers.insert(SIGNATURE_VERSION_HEADER, HeaderValue::from_static("v1"));
        let req = SignedRequest {
            method: "POST",
            uri: "https://x/y",
            body: V1_BODY.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V1_SECRET).verify(&req, 0),
            Err(SignatureError::VersionNotAccepted("v1".into()))
        );
        assert_eq!(
            verifier(V1_SECRET).allow_legacy(true).verify(&req, 0),
            Ok(SignatureVersion::V1)
        );
        let forged = V1_BODY.replace("54321", "54322");
        let req = SignedRequest {
            method: "POST",
            uri: "https://x/y",
            body: forged.as_bytes(),
            headers: &headers,
        };
        assert_eq!(
            verifier(V1_SECRET).allow_legacy(true).verify(&req, 0),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn no_signature_header_is_missing() {
        let headers = HeaderMap::new();
        let req = SignedRequest {
            method: "POST",
            uri: "https://x/y",
            body: b"[]",
            headers: &headers,
        };
        assert_eq!(
            verifier(V1_SECRET).allow_legacy(true).verify(&req, 0),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", verifier(V3_SECRET));
        assert!(!shown.contains(V3_SECRET));
        assert!(shown.contains("redacted"));
    }
}
