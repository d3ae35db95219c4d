//! The emulated data model: object kinds, property definitions with HubSpot's types, value
//! validation and timestamp formatting.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One of the three CRM object types the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Contacts (`0-1`).
    Contact,
    /// Companies (`0-2`).
    Company,
    /// Deals (`0-3`).
    Deal,
}

impl ObjectKind {
    /// All kinds, in index order.
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Contact, ObjectKind::Company, ObjectKind::Deal];

    /// Parses a path segment: plural, singular or object type id.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(Self::Contact),
            "companies" | "company" | "0-2" => Some(Self::Company),
            "deals" | "deal" | "0-3" => Some(Self::Deal),
            _ => None,
        }
    }

    /// Dense index (0..3).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Singular lowercase name as used in webhook subscription types (`contact`).
    pub fn singular(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Company => "company",
            Self::Deal => "deal",
        }
    }

    /// Plural name as used in paths and v3 `associations` keys (`contacts`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Contact => "contacts",
            Self::Company => "companies",
            Self::Deal => "deals",
        }
    }

    /// Object type id (`0-1`).
    pub fn type_id(self) -> &'static str {
        match self {
            Self::Contact => "0-1",
            Self::Company => "0-2",
            Self::Deal => "0-3",
        }
    }

    /// Upper-case name as used in error messages (`CONTACT`).
    pub fn upper(self) -> &'static str {
        match self {
            Self::Contact => "CONTACT",
            Self::Company => "COMPANY",
            Self::Deal => "DEAL",
        }
    }

    /// The last-modified property: `lastmodifieddate` for contacts, `hs_lastmodifieddate` else.
    pub fn lastmodified_prop(self) -> &'static str {
        match self {
            Self::Contact => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// Properties returned when the request names none.
    pub fn default_props(self) -> &'static [&'static str] {
        match self {
            Self::Contact => &[
                "firstname",
                "lastname",
                "email",
                "lastmodifieddate",
                "hs_object_id",
                "createdate",
            ],
            Self::Company => &[
                "name",
                "domain",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
            Self::Deal => &[
                "dealname",
                "amount",
                "closedate",
                "pipeline",
                "dealstage",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
        }
    }

    /// Properties that come back even when an explicit list is given.
    pub fn always_props(self) -> [&'static str; 3] {
        ["createdate", self.lastmodified_prop(), "hs_object_id"]
    }

    /// Properties searched by a free-text `query`.
    pub fn query_props(self) -> &'static [&'static str] {
        match self {
            Self::Contact => &[
                "firstname",
                "lastname",
                "email",
                "phone",
                "hs_additional_emails",
                "fax",
                "mobilephone",
                "company",
            ],
            Self::Company => &["name", "domain", "website", "phone"],
            Self::Deal => &["dealname", "pipeline", "dealstage", "description"],
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

/// HubSpot property data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropType {
    /// Free text (≤ 65,536 characters).
    String,
    /// A decimal number.
    Number,
    /// A date at midnight UTC.
    Date,
    /// A timestamp.
    Datetime,
    /// One or more (`;`-separated) option values.
    Enumeration,
    /// `true` / `false`.
    Bool,
    /// A phone number (kept as text).
    PhoneNumber,
}

impl PropType {
    /// Parses HubSpot's `type` name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "number" => Self::Number,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            "enumeration" => Self::Enumeration,
            "bool" => Self::Bool,
            "phone_number" => Self::PhoneNumber,
            _ => return None,
        })
    }

    /// HubSpot's `type` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Enumeration => "enumeration",
            Self::Bool => "bool",
            Self::PhoneNumber => "phone_number",
        }
    }

    /// Field types HubSpot allows for this type.
    pub fn allowed_field_types(self) -> &'static [&'static str] {
        match self {
            Self::Bool => &["booleancheckbox", "calculation_equation"],
            Self::Enumeration => &[
                "booleancheckbox",
                "checkbox",
                "radio",
                "select",
                "calculation_equation",
            ],
            Self::Date | Self::Datetime => &["date"],
            Self::String => &[
                "text",
                "textarea",
                "html",
                "phonenumber",
                "file",
                "calculation_equation",
            ],
            Self::Number => &["number", "calculation_equation"],
            Self::PhoneNumber => &["phonenumber", "text"],
        }
    }
}

/// One enumeration option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropOption {
    /// Display label.
    pub label: String,
    /// Stored value.
    pub value: String,
    /// Hidden in forms.
    #[serde(default)]
    pub hidden: bool,
    /// Optional description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Display order.
    #[serde(
        default,
        rename = "displayOrder",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_order: Option<i64>,
}

/// A property definition.
#[derive(Debug, Clone)]
pub struct PropertyDef {
    /// Internal name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    pub kind: PropType,
    /// Field type.
    pub field_type: String,
    /// Group.
    pub group_name: String,
    /// Description.
    pub description: String,
    /// Enumeration options.
    pub options: Vec<PropOption>,
    /// Unique-value property (usable as `idProperty`).
    pub unique: bool,
    /// Defined by HubSpot (not custom).
    pub hubspot_defined: bool,
    /// Value computed by HubSpot; writes are rejected.
    pub read_only: bool,
    /// Created at (ms).
    pub created_at: i64,
    /// Archived (recycle bin).
    pub archived: bool,
}

impl PropertyDef {
    /// The `Property` JSON shape of the properties API.
    pub fn to_json(&self) -> Value {
        let ts = iso(self.created_at);
        json!({
            "updatedAt": ts,
            "createdAt": ts,
            "name": self.name,
            "label": self.label,
            "type": self.kind.name(),
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": self.options,
            "displayOrder": -1,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.unique,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
            "formField": !self.read_only,
            "archived": self.archived,
        })
    }
}

/// Why a property value was rejected; maps to HubSpot's `error` codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// Property name.
    pub name: String,
    /// HubSpot error code (`PROPERTY_DOESNT_EXIST`, `INVALID_INTEGER`, ...).
    pub code: &'static str,
    /// Human message.
    pub message: String,
}

/// The property registry of one object type in one portal.
#[derive(Debug, Clone)]
pub struct PropertyRegistry {
    defs: Vec<PropertyDef>,
    by_name: HashMap<String, u16>,
}

/// Names of properties whose values live in record fields rather than the property list.
pub const COMPUTED: [&str; 4] = [
    "hs_object_id",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
];

impl PropertyRegistry {
    /// The built-in properties of `kind`.
    pub fn builtin(kind: ObjectKind, now: i64) -> Self {
        let mut reg = Self {
            defs: Vec::new(),
            by_name: HashMap::new(),
        };
        let s = PropType::String;
        let add = |reg: &mut Self, name: &str, t: PropType, ro: bool, unique: bool| {
            let field = match t {
                PropType::Number => "number",
                PropType::Date | PropType::Datetime => "date",
                PropType::Enumeration => "select",
                PropType::Bool => "booleancheckbox",
                PropType::PhoneNumber => "phonenumber",
                PropType::String => "text",
            };
            reg.push(PropertyDef {
                name: name.to_owned(),
                label: label_for(name),
                kind: t,
                field_type: field.to_owned(),
                group_name: format!("{}information", kind.singular()),
                description: String::new(),
                options: Vec::new(),
                unique,
                hubspot_defined: true,
                read_only: ro,
                created_at: now,
                archived: false,
            });
        };
        add(&mut reg, "hs_object_id", PropType::Number, true, true);
        add(&mut reg, "createdate", PropType::Datetime, false, false);
        add(
            &mut reg,
            "hs_lastmodifieddate",
            PropType::Datetime,
            true,
            false,
        );
        add(
            &mut reg,
            "hs_merged_object_ids",
            PropType::Enumeration,
            true,
            false,
        );
        match kind {
            ObjectKind::Contact => {
                add(
                    &mut reg,
                    "lastmodifieddate",
                    PropType::Datetime,
                    true,
                    false,
                );
                for p in [
                    "firstname",
                    "lastname",
                    "company",
                    "jobtitle",
                    "website",
                    "address",
                ] {
                    add(&mut reg, p, s, false, false);
                }
                for p in ["city", "state", "zip", "country", "hs_additional_emails"] {
                    add(&mut reg, p, s, false, false);
                }
                add(&mut reg, "email", s, false, true);
                for p in ["phone", "mobilephone", "fax"] {
                    add(&mut reg, p, PropType::String, false, false);
                }
                add(
                    &mut reg,
                    "hs_calculated_merged_vids",
                    PropType::Enumeration,
                    true,
                    false,
                );
                add(
                    &mut reg,
                    "lifecyclestage",
                    PropType::Enumeration,
                    false,
                    false,
                );
                reg.set_options(
                    "lifecyclestage",
                    &[
                        "subscriber",
                        "lead",
                        "marketingqualifiedlead",
                        "salesqualifiedlead",
                        "opportunity",
                        "customer",
                        "evangelist",
                        "other",
                    ],
                );
                add(
                    &mut reg,
                    "hs_marketable_until_renewal",
                    PropType::Enumeration,
                    true,
                    false,
                );
            }
            ObjectKind::Company => {
                for p in [
                    "name", "domain", "website", "phone", "city", "state", "country",
                ] {
                    add(&mut reg, p, s, false, false);
                }
                add(&mut reg, "industry", s, false, false);
                add(&mut reg, "description", s, false, false);
                add(
                    &mut reg,
                    "numberofemployees",
                    PropType::Number,
                    false,
                    false,
                );
                add(&mut reg, "annualrevenue", PropType::Number, false, false);
            }
            ObjectKind::Deal => {
                add(&mut reg, "dealname", s, false, false);
                add(&mut reg, "description", s, false, false);
                add(&mut reg, "amount", PropType::Number, false, false);
                add(&mut reg, "closedate", PropType::Datetime, false, false);
                add(&mut reg, "pipeline", PropType::Enumeration, false, false);
                reg.set_options("pipeline", &["default"]);
                add(&mut reg, "dealstage", PropType::Enumeration, false, false);
                reg.set_options(
                    "dealstage",
                    &[
                        "appointmentscheduled",
                        "qualifiedtobuy",
                        "presentationscheduled",
                        "decisionmakerboughtin",
                        "contractsent",
                        "closedwon",
                        "closedlost",
                    ],
                );
                add(
                    &mut reg,
                    "hubspot_owner_id",
                    PropType::Enumeration,
                    false,
                    false,
                );
            }
        }
        reg
    }

    fn set_options(&mut self, name: &str, values: &[&str]) {
        if let Some(&i) = self.by_name.get(name) {
            self.defs[usize::from(i)].options = values
                .iter()
                .enumerate()
                .map(|(n, v)| PropOption {
                    label: label_for(v),
                    value: (*v).to_owned(),
                    hidden: false,
                    description: None,
                    display_order: i64::try_from(n).ok(),
                })
                .collect();
        }
    }

    /// Adds a definition; returns its index.
    pub fn push(&mut self, def: PropertyDef) -> u16 {
        let idx = u16::try_from(self.defs.len()).unwrap_or(u16::MAX);
        self.by_name.insert(def.name.clone(), idx);
        self.defs.push(def);
        idx
    }

    /// Index of a live (not archived) property.
    pub fn index(&self, name: &str) -> Option<u16> {
        self.by_name
            .get(name)
            .copied()
            .filter(|i| !self.defs[usize::from(*i)].archived)
    }

    /// Index of a property, archived or not.
    pub fn index_any(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    /// Definition by index.
    pub fn def(&self, idx: u16) -> &PropertyDef {
        &self.defs[usize::from(idx)]
    }

    /// Mutable definition by index.
    pub fn def_mut(&mut self, idx: u16) -> &mut PropertyDef {
        &mut self.defs[usize::from(idx)]
    }

    /// Definition by name (live only).
    pub fn get(&self, name: &str) -> Option<&PropertyDef> {
        self.index(name).map(|i| self.def(i))
    }

    /// All definitions.
    pub fn all(&self) -> impl Iterator<Item = &PropertyDef> {
        self.defs.iter()
    }

    /// Number of unique-value properties (live).
    pub fn unique_count(&self) -> usize {
        self.defs
            .iter()
            .filter(|d| d.unique && !d.archived && !d.hubspot_defined)
            .count()
    }

    /// Validates and normalises a value written by a client. `""` clears the value.
    pub fn normalise(&self, name: &str, raw: &str) -> Result<(u16, Option<String>), ValueError> {
        let err = |code: &'static str, message: String| ValueError {
            name: name.to_owned(),
            code,
            message,
        };
        let Some(idx) = self.index(name) else {
            return Err(err(
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
        };
        let def = self.def(idx);
        if def.read_only {
            return Err(err(
                "READ_ONLY_VALUE",
                format!("{name} is a read only property; its value cannot be set."),
            ));
        }
        if raw.is_empty() {
            return Ok((idx, None));
        }
        let value = match def.kind {
            PropType::String | PropType::PhoneNumber => {
                if raw.chars().count() > 65_536 {
                    return Err(err(
                        "MAX_CHARACTERS",
                        format!("{name} exceeds the maximum of 65536 characters"),
                    ));
                }
                if name == "email" && !looks_like_email(raw) {
                    return Err(err(
                        "INVALID_EMAIL",
                        format!("Email address {raw} is invalid"),
                    ));
                }
                raw.to_owned()
            }
            PropType::Number => {
                let t = raw.trim();
                if t.parse::<f64>().map(|f| f.is_finite()).unwrap_or(false) {
                    t.to_owned()
                } else {
                    return Err(err(
                        "INVALID_INTEGER",
                        format!("{raw} was not a valid number."),
                    ));
                }
            }
            PropType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" => "true".to_owned(),
                "false" => "false".to_owned(),
                _ => {
                    return Err(err(
                        "INVALID_BOOLEAN",
                        format!("{raw} was not a valid boolean."),
                    ));
                }
            },
            PropType::Datetime => match parse_time(raw) {
                Some(ms) => iso(ms),
                None => {
                    return Err(err(
                        "INVALID_DATE",
                        format!("{raw} was not a valid date time."),
                    ));
                }
            },
            PropType::Date => match parse_time(raw) {
                Some(ms) if ms.rem_euclid(86_400_000) == 0 => iso_date(ms),
                Some(_) => {
                    return Err(err(
                        "INVALID_DATE",
                        format!("{raw} is at 0 ms UTC offset, not midnight UTC."),
                    ));
                }
                None => {
                    return Err(err("INVALID_DATE", format!("{raw} was not a valid date.")));
                }
            },
            PropType::Enumeration => {
                if def.options.is_empty() {
                    raw.to_owned()
                } else {
                    for part in raw.split(';').filter(|p| !p.is_empty()) {
                        if !def.options.iter().any(|o| o.value == part) {
                            let allowed: Vec<&str> =
                                def.options.iter().map(|o| o.value.as_str()).collect();
                            return Err(err(
                                "INVALID_OPTION",
                                format!(
                                    "{part} was not one of the allowed options: [{}]",
                                    allowed.join(", ")
                                ),
                            ));
                        }
                    }
                    raw.to_owned()
                }
            }
        };
        Ok((idx, Some(value)))
    }
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    let local = parts.next().unwrap_or("");
    let domain = parts.next().unwrap_or("");
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.contains(' ')
}

/// A label for a built-in name: `firstname` → `Firstname`.
fn label_for(name: &str) -> String {
    let mut c = name.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// ISO-8601 UTC with milliseconds: `2024-01-17T19:55:04.281Z`.
pub fn iso(ms: i64) -> String {
    let (date, rem) = split_day(ms);
    let secs = rem / 1000;
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        rem % 1000
    )
}

/// `YYYY-MM-DD` of a timestamp.
pub fn iso_date(ms: i64) -> String {
    split_day(ms).0
}

fn split_day(ms: i64) -> (String, i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let date = time::Date::from_julian_day(i32::try_from(days + 2_440_588).unwrap_or(2_440_588))
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| "1970-01-01".to_owned());
    (date, rem)
}

/// Parses epoch-ms digits, an RFC 3339 timestamp or a `YYYY-MM-DD` date into epoch ms.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && !s.contains("--")
        && let Ok(v) = s.parse::<i64>()
    {
        return Some(v);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, fmt) {
        let days = i64::from(d.to_julian_day()) - 2_440_588;
        return Some(days * 86_400_000);
    }
    None
}
