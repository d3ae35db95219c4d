//! Bulk loader: realistic contacts, companies and deals (names, emails, companies, a share of
//! near-duplicates), deterministic from a seed, written straight into the store.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::model::{ObjectKind, iso, now_ms};
use crate::portal::PortalData;
use crate::store::{Record, default_assoc};

/// What to seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSpec {
    /// Contacts to create.
    pub contacts: usize,
    /// Companies to create.
    pub companies: usize,
    /// Deals to create.
    pub deals: usize,
    /// Share (0–1) of contacts and companies that are near-duplicates of an earlier one.
    pub duplicate_share: f64,
    /// Associate each contact and deal with a company (when companies exist).
    pub associate: bool,
    /// Seed; `None` uses the emulator seed.
    pub seed: Option<u64>,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            contacts: 0,
            companies: 0,
            deals: 0,
            duplicate_share: 0.05,
            associate: false,
            seed: None,
        }
    }
}

/// What was seeded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedReport {
    /// Ids of created contacts, first and last (inclusive), if any.
    pub contact_ids: Option<(u64, u64)>,
    /// Ids of created companies.
    pub company_ids: Option<(u64, u64)>,
    /// Ids of created deals.
    pub deal_ids: Option<(u64, u64)>,
    /// How many records are near-duplicates.
    pub near_duplicates: usize,
}

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Lorelai",
    "Rory",
    "Luke",
    "Sookie",
    "Jackson",
    "Emily",
    "Richard",
    "Paris",
    "Lane",
    "Kirk",
    "Aisha",
    "Mateo",
    "Yuki",
    "Olga",
    "Chen",
    "Priya",
    "Lukas",
    "Sofia",
    "Omar",
    "Ines",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Gilmore",
    "Danes",
    "Hayden",
    "Belleville",
    "Kim",
    "Geller",
    "Nakamura",
    "Ivanova",
    "Wang",
    "Patel",
    "Müller",
    "Rossi",
    "Haddad",
    "Silva",
    "O'Brien",
    "Nguyen",
    "Kowalski",
    "Dubois",
    "Jensen",
    "Okafor",
];
const ADJ: &[&str] = &[
    "Blue",
    "Bright",
    "Global",
    "Pioneer",
    "Summit",
    "Vertex",
    "Golden",
    "Rapid",
    "Silver",
    "Northern",
    "Dragonfly",
    "Evergreen",
    "Atlas",
    "Nimbus",
    "Quantum",
    "Harbor",
    "Maple",
    "Crimson",
    "Iron",
    "Lunar",
];
const NOUN: &[&str] = &[
    "Systems",
    "Labs",
    "Logistics",
    "Foods",
    "Dynamics",
    "Media",
    "Analytics",
    "Works",
    "Partners",
    "Energy",
    "Diner",
    "Inn",
    "Robotics",
    "Health",
    "Capital",
    "Studios",
    "Networks",
    "Supply",
    "Foundry",
    "Ventures",
];
const SUFFIX: &[&str] = &["Inc", "LLC", "Ltd", "GmbH", "Corp", "Co", "SA", "BV"];
const CITIES: &[&str] = &[
    "Boston",
    "Stars Hollow",
    "Berlin",
    "Dublin",
    "Tokyo",
    "Austin",
    "Paris",
    "Lagos",
    "Sydney",
    "Toronto",
];
const STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];
const LIFECYCLE: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
];
const PRODUCTS: &[&str] = &[
    "Annual plan",
    "Onboarding",
    "Enterprise licence",
    "Renewal",
    "Upgrade",
    "Pilot",
];

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn slug(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

struct Builder<'a> {
    data: &'a PortalData,
    kind: ObjectKind,
    props: Vec<(u16, Box<str>)>,
}

impl Builder<'_> {
    fn set(&mut self, name: &str, v: String) {
        if let Some(i) = self.data.reg(self.kind).index(name) {
            self.props.push((i, v.into_boxed_str()));
        }
    }

    fn finish(mut self, created: i64, updated: i64) -> Record {
        self.props.sort_by_key(|(i, _)| *i);
        self.props.dedup_by_key(|(i, _)| *i);
        self.props.shrink_to_fit();
        Record {
            created,
            updated,
            archived_at: 0,
            props: self.props,
        }
    }
}

/// Seeds records into a portal without emitting webhooks.
pub fn seed(data: &mut PortalData, spec: &SeedSpec, default_seed: u64) -> SeedReport {
    let mut rng = StdRng::seed_from_u64(spec.seed.unwrap_or(default_seed));
    let now = now_ms();
    let dup = spec.duplicate_share.clamp(0.0, 1.0);
    let mut report = SeedReport::default();
    // Companies first so contacts and deals can reference them.
    let mut company_names: Vec<(u64, String, String)> = Vec::with_capacity(spec.companies);
    let k = ObjectKind::Company;
    let total = spec.companies;
    for n in 0..total {
        let near = n > 0 && rng.random::<f64>() < dup;
        let (name, domain) = if near {
            let (_, base, dom) = &company_names[rng.random_range(0..company_names.len())];
            report.near_duplicates += 1;
            let variant = match rng.random_range(0..3) {
                0 => base.to_uppercase(),
                1 => format!("{base}."),
                _ => base
                    .replace(" Inc", " Incorporated")
                    .replace(" Corp", " Corporation"),
            };
            (
                variant,
                format!("{}{n}.example", dom.trim_end_matches(".example")),
            )
        } else {
            let name = format!(
                "{} {} {}",
                pick(&mut rng, ADJ),
                pick(&mut rng, NOUN),
                pick(&mut rng, SUFFIX)
            );
            let domain = format!("{}{n}.example", slug(&name));
            (name, domain)
        };
        let mut b = Builder {
            data,
            kind: k,
            props: Vec::with_capacity(6),
        };
        b.set("name", name.clone());
        b.set("domain", domain.clone());
        b.set("city", pick(&mut rng, CITIES).to_owned());
        b.set("industry", pick(&mut rng, NOUN).to_uppercase());
        b.set("numberofemployees", rng.random_range(1..5000).to_string());
        let created = now - i64::try_from((total - n) as u64).unwrap_or(0) * 1000;
        let rec = b.finish(created, (created + rng.random_range(0..1000)).min(now - 1));
        let store = &mut data.stores[k.index()];
        let id = store.alloc_id();
        let uk = data.ukeys[k.index()].clone();
        data.stores[k.index()].insert_live(id, rec, &uk);
        company_names.push((id, name, domain));
        report.company_ids = Some((report.company_ids.map_or(id, |r| r.0), id));
    }
    let k = ObjectKind::Contact;
    let uk = data.ukeys[k.index()].clone();
    let total = spec.contacts;
    let mut people: Vec<(String, String)> = Vec::new();
    for n in 0..total {
        let near = n > 0 && !people.is_empty() && rng.random::<f64>() < dup;
        let (first, last) = if near {
            report.near_duplicates += 1;
            let (f, l) = people[rng.random_range(0..people.len())].clone();
            match rng.random_range(0..3) {
                0 => (f.to_lowercase(), l),
                1 => (f.chars().take(1).collect::<String>() + ".", l),
                _ => (f, l.to_uppercase()),
            }
        } else {
            (
                pick(&mut rng, FIRST).to_owned(),
                pick(&mut rng, LAST).to_owned(),
            )
        };
        if people.len() < 10_000 {
            people.push((first.clone(), last.clone()));
        }
        let domain = if near {
            "gmail.example".to_owned()
        } else {
            company_names
                .get(n % company_names.len().max(1))
                .map(|c| c.2.clone())
                .unwrap_or_else(|| "example.com".to_owned())
        };
        let email = format!("{}.{}{n}@{domain}", slug(&first), slug(&last));
        let mut b = Builder {
            data,
            kind: k,
            props: Vec::with_capacity(7),
        };
        b.set("firstname", first);
        b.set("lastname", last);
        b.set("email", email);
        if let Some(c) = company_names.get(n % company_names.len().max(1)) {
            b.set("company", c.1.clone());
        }
        b.set(
            "phone",
            format!(
                "+1 555 {:03} {:04}",
                rng.random_range(0..1000),
                rng.random_range(0..10000)
            ),
        );
        b.set("lifecyclestage", pick(&mut rng, LIFECYCLE).to_owned());
        b.set("city", pick(&mut rng, CITIES).to_owned());
        let created = now - i64::try_from((total - n) as u64).unwrap_or(0) * 10;
        let rec = b.finish(
            created,
            (created + rng.random_range(0..100_000)).min(now - 1),
        );
        let id = data.stores[k.index()].alloc_id();
        data.stores[k.index()].insert_live(id, rec, &uk);
        if spec.associate && !company_names.is_empty() {
            let cid = company_names[n % company_names.len()].0;
            data.assoc.add(
                id,
                cid,
                default_assoc(ObjectKind::Contact, ObjectKind::Company),
            );
        }
        report.contact_ids = Some((report.contact_ids.map_or(id, |r| r.0), id));
    }
    let k = ObjectKind::Deal;
    let uk = data.ukeys[k.index()].clone();
    let total = spec.deals;
    for n in 0..total {
        let company = company_names.get(n % company_names.len().max(1));
        let cname = company.map_or("Direct", |c| c.1.as_str()).to_owned();
        let mut b = Builder {
            data,
            kind: k,
            props: Vec::with_capacity(6),
        };
        b.set(
            "dealname",
            format!("{cname} - {}", pick(&mut rng, PRODUCTS)),
        );
        b.set("amount", (rng.random_range(5..500) * 100).to_string());
        b.set("dealstage", pick(&mut rng, STAGES).to_owned());
        b.set("pipeline", "default".to_owned());
        b.set(
            "closedate",
            iso(now + rng.random_range(-90..90) * 86_400_000),
        );
        let created = now - i64::try_from((total - n) as u64).unwrap_or(0) * 1000;
        let rec = b.finish(created, (created + rng.random_range(0..1000)).min(now - 1));
        let id = data.stores[k.index()].alloc_id();
        data.stores[k.index()].insert_live(id, rec, &uk);
        if spec.associate
            && let Some(c) = company
        {
            data.assoc.add(
                id,
                c.0,
                default_assoc(ObjectKind::Deal, ObjectKind::Company),
            );
        }
        report.deal_ids = Some((report.deal_ids.map_or(id, |r| r.0), id));
    }
    report
}
