//! Synthetic directory data: a realistic Active Directory export of `contoso.com` as LDIF, for
//! tests, benchmarks and trying the default rules (`idflow gen ad`).
//!
//! Consumes: counts and a seed. Produces: LDIF content records (see [`ad_entries`] for what is
//! in them), the same text for the same arguments on every platform (an own SplitMix64
//! generator; no system randomness). Every attribute written is declared for its object type in
//! `rules/entra-default/schema/contoso-com.idf` (`tests/gen.rs` checks it).

use crate::connector::ldif::{self, Entry, escape_rdn_value};
use crate::value::Value;
use std::collections::HashSet;

/// The most users or groups `idflow gen ad` makes (a larger count is a usage error, not an
/// allocation failure).
pub const MAX_COUNT: u64 = 1_000_000;

/// The domain's naming context.
pub const BASE_DN: &str = "DC=contoso,DC=com";
/// Where the ordinary users are.
pub const USERS_OU: &str = "OU=Users,OU=CORP,DC=contoso,DC=com";
/// Where the groups are.
pub const GROUPS_OU: &str = "OU=Groups,OU=CORP,DC=contoso,DC=com";
/// Where the contacts are.
pub const CONTACTS_OU: &str = "OU=Contacts,OU=CORP,DC=contoso,DC=com";
/// The default container of the built-in and service accounts.
pub const SYSTEM_CONTAINER: &str = "CN=Users,DC=contoso,DC=com";
/// The domain SID's sub-authorities after 21.
const DOMAIN: [u32; 3] = [3_623_811_015, 3_361_044_348, 30_300_820];

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// True with the given chance in percent.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn bytes16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        // A version-4, RFC 4122 GUID (in AD byte order, the version is in byte 7).
        b[7] = (b[7] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        b
    }
}

const GIVEN: &[&str] = &[
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
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Margaret",
    "Paul",
    "Sandra",
    "Steven",
    "Ashley",
    "Andrew",
    "Emily",
    "Kenneth",
    "Donna",
    "Joshua",
    "Michelle",
    "Kevin",
    "Carol",
    "Brian",
    "Amanda",
    "George",
    "Melissa",
    "Timothy",
    "Deborah",
    "Wei",
    "Priya",
    "Hiroshi",
    "Aisha",
    "José",
    "Zoë",
    "Søren",
    "Renée",
    "Łukasz",
    "Ingrid",
    "Mateo",
    "Fatima",
    "Olumide",
    "Anika",
];

const SURNAMES: &[&str] = &[
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
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "O'Brien",
    "Müller",
    "Østergaard",
    "Núñez",
    "Kowalski",
    "Tanaka",
    "Patel",
    "Okafor",
    "Van der Berg",
    "Chen",
];

/// Departments and their titles.
const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "Finance",
        &[
            "Accountant",
            "Financial Analyst",
            "Controller",
            "Payroll Specialist",
        ],
    ),
    (
        "Sales",
        &["Account Executive", "Sales Representative", "Sales Manager"],
    ),
    (
        "Marketing",
        &["Marketing Specialist", "Content Writer", "Brand Manager"],
    ),
    (
        "Engineering",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Engineering Manager",
            "Architect",
        ],
    ),
    (
        "IT",
        &[
            "Systems Administrator",
            "Help Desk Technician",
            "Network Engineer",
        ],
    ),
    (
        "Human Resources",
        &["HR Generalist", "Recruiter", "HR Business Partner"],
    ),
    ("Legal", &["Counsel", "Paralegal"]),
    (
        "Operations",
        &[
            "Operations Analyst",
            "Facilities Coordinator",
            "Logistics Manager",
        ],
    ),
    ("Support", &["Support Engineer", "Customer Success Manager"]),
];

const GROUP_ROLES: &[&str] = &[
    "Readers",
    "Editors",
    "Owners",
    "Admins",
    "Members",
    "Approvers",
    "Contributors",
    "Users",
];

const DL_TOPICS: &[&str] = &["All", "Announcements", "Team", "Leads", "Social", "Updates"];

/// ASCII letters of a name, lower-cased (`Müller` → `muller`, `O'Brien` → `obrien`).
fn ascii_slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ä' | 'å' | 'ã' => 'a',
            'è' | 'é' | 'ê' | 'ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'ò' | 'ó' | 'ô' | 'ö' | 'ø' | 'Ø' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ü' => 'u',
            'ñ' => 'n',
            'ł' | 'Ł' => 'l',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// `base`, or `base2`, `base3`, ... : the first not in `used` (which it is added to).
fn unique(used: &mut HashSet<String>, base: &str, max_len: usize) -> String {
    let mut n = 1;
    loop {
        let suffix = if n == 1 { String::new() } else { n.to_string() };
        let keep = max_len.saturating_sub(suffix.len());
        let head: String = base.chars().take(keep).collect();
        let candidate = format!("{head}{suffix}");
        if used.insert(candidate.to_lowercase()) {
            return candidate;
        }
        n += 1;
    }
}

/// The binary form of `S-1-5-21-<domain>-<rid>`.
fn sid(rid: u32) -> Vec<u8> {
    let mut out = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21, DOMAIN[0], DOMAIN[1], DOMAIN[2], rid] {
        out.extend_from_slice(&sub.to_le_bytes());
    }
    out
}

/// A FILETIME (100 ns since 1601) between 2023-01-01 and 2025-06-01.
fn filetime(rng: &mut Rng) -> i64 {
    const FROM: usize = 1_672_531_200;
    const TO: usize = 1_748_736_000;
    let unix = (FROM + rng.below(TO - FROM)) as i64;
    (unix + 11_644_473_600) * 10_000_000 + rng.below(10_000_000) as i64
}

fn s(v: impl Into<String>) -> Vec<Value> {
    vec![Value::str(v.into())]
}

fn r(dn: &str) -> Value {
    Value::Ref(dn.into())
}

fn n(v: i64) -> Vec<Value> {
    vec![Value::Num(v)]
}

fn b(bytes: impl Into<Vec<u8>>) -> Vec<Value> {
    vec![Value::bin(bytes.into())]
}

fn push(e: &mut Entry, name: &str, values: Vec<Value>) {
    e.attrs.push((name.to_string(), values));
}

const USER_CLASSES: [&str; 4] = ["top", "person", "organizationalPerson", "user"];

fn user_entry(dn: String) -> Entry {
    Entry {
        dn,
        object_classes: USER_CLASSES.iter().map(|c| c.to_string()).collect(),
        attrs: Vec::new(),
    }
}

struct Person {
    given: &'static str,
    sn: &'static str,
    cn: String,
    dn: String,
    sam: String,
    rid: u32,
}

/// The objects of a synthetic `contoso.com` export:
///
/// - `users` ordinary users in [`USERS_OU`] (objectClass top, person, organizationalPerson,
///   user): objectGUID, objectSid (RID 1105 + i), sAMAccountName, userPrincipalName (about 3%
///   have none), givenName, sn, cn, displayName, mail (about 95%), proxyAddresses (`SMTP:`
///   primary and `smtp:` secondaries), mailNickname (most of those with mail),
///   userAccountControl (512; about 5% disabled 514, about 10% 66048), department, title,
///   telephoneNumber, pwdLastSet (a FILETIME, sometimes 0), and manager: the first
///   max(1, users / 20) users are top managers, each other user's manager is an earlier user
///   (a forest of trees);
/// - `groups` groups in [`GROUPS_OU`]: about 80% security global (groupType -2147483646), the
///   others distribution universal (8) with mail, proxyAddresses and mailNickname; members are
///   users and, for about a quarter, earlier groups (nesting without cycles);
/// - ceil(users / 50) contacts in [`CONTACTS_OU`] with external mail, proxyAddresses and
///   targetAddress;
/// - in [`SYSTEM_CONTAINER`]: Administrator and krbtgt (isCriticalSystemObject TRUE) and one
///   `MSOL_` service account;
/// - min(2, users) replication-conflict copies of users in [`USERS_OU`]
///   (`CN=<cn>\0ACNF:<guid>`, sAMAccountName `$DUPLICATE-<rid in hex>`).
///
/// So there are `users` + 3 + min(2, users) user objects, `groups` group objects.
pub fn ad_entries(users: usize, groups: usize, seed: u64) -> Vec<Entry> {
    let mut rng = Rng(seed ^ 0x005E_EDC0_DE1D_F10E);
    // Saturating: an absurd count fails for lack of memory as it grows, never on a capacity
    // overflow up front (the CLI keeps counts to MAX_COUNT).
    let mut out = Vec::with_capacity(
        users
            .saturating_add(groups)
            .saturating_add(users / 50 + 8)
            .min(4 * MAX_COUNT as usize),
    );
    let mut sams: HashSet<String> = HashSet::new();
    let mut cns: HashSet<String> = HashSet::new();
    let mut mails: HashSet<String> = HashSet::new();
    for reserved in ["administrator", "krbtgt", "guest"] {
        sams.insert(reserved.into());
    }

    // Users.
    let mut people: Vec<Person> = Vec::with_capacity(users.min(MAX_COUNT as usize));
    let top_managers = (users / 20).max(1);
    for i in 0..users {
        let given = rng.pick(GIVEN);
        let sn = rng.pick(SURNAMES);
        let cn = unique(&mut cns, &format!("{given} {sn}"), 64);
        let dn = format!("CN={},{USERS_OU}", escape_rdn_value(&cn));
        let first: String = ascii_slug(given).chars().take(1).collect();
        let sam = unique(&mut sams, &format!("{first}{}", ascii_slug(sn)), 20);
        let rid = 1105 + i as u32;
        let mut e = user_entry(dn.clone());
        push(&mut e, "cn", s(cn.as_str()));
        push(&mut e, "givenName", s(given));
        push(&mut e, "sn", s(sn));
        push(&mut e, "displayName", s(format!("{given} {sn}")));
        push(&mut e, "sAMAccountName", s(sam.as_str()));
        if !rng.chance(3) {
            push(&mut e, "userPrincipalName", s(format!("{sam}@contoso.com")));
        }
        push(&mut e, "objectGUID", b(rng.bytes16()));
        push(&mut e, "objectSid", b(sid(rid)));
        let uac = match rng.below(100) {
            0..5 => 514,
            5..15 => 66048,
            _ => 512,
        };
        push(&mut e, "userAccountControl", n(uac));
        let (dept, titles) = DEPARTMENTS[rng.below(DEPARTMENTS.len())];
        push(&mut e, "department", s(dept));
        push(&mut e, "title", s(rng.pick(titles)));
        push(
            &mut e,
            "telephoneNumber",
            s(format!("+1 425 555 {:04}", rng.below(10_000))),
        );
        let pwd = if rng.chance(2) { 0 } else { filetime(&mut rng) };
        push(&mut e, "pwdLastSet", n(pwd));
        if !rng.chance(5) {
            let local = unique(
                &mut mails,
                &format!("{}.{}", ascii_slug(given), ascii_slug(sn)),
                64,
            );
            let mail = format!("{local}@contoso.com");
            push(&mut e, "mail", s(mail.as_str()));
            let mut proxies = vec![Value::str(format!("SMTP:{mail}"))];
            if local != sam.to_lowercase() {
                proxies.push(Value::str(format!("smtp:{sam}@contoso.com")));
            }
            proxies.push(Value::str(format!(
                "smtp:{sam}@contoso.mail.onmicrosoft.com"
            )));
            push(&mut e, "proxyAddresses", proxies);
            if !rng.chance(10) {
                push(&mut e, "mailNickname", s(sam.as_str()));
            }
        }
        if i >= top_managers {
            let m = rng.below(i);
            push(&mut e, "manager", vec![r(&people[m].dn)]);
        }
        people.push(Person {
            given,
            sn,
            cn,
            dn,
            sam,
            rid,
        });
        out.push(e);
    }

    // Groups.
    let mut group_dns: Vec<String> = Vec::with_capacity(groups.min(MAX_COUNT as usize));
    let mut group_cns: HashSet<String> = HashSet::new();
    for j in 0..groups {
        let (dept, _) = DEPARTMENTS[rng.below(DEPARTMENTS.len())];
        let security = rng.chance(80);
        let base = if security {
            format!("SG-{}-{}", dept.replace(' ', ""), rng.pick(GROUP_ROLES))
        } else {
            format!("DL-{dept} {}", rng.pick(DL_TOPICS))
        };
        let cn = unique(&mut group_cns, &base, 64);
        let dn = format!("CN={},{GROUPS_OU}", escape_rdn_value(&cn));
        let mut e = Entry {
            dn: dn.clone(),
            object_classes: vec!["top".into(), "group".into()],
            attrs: Vec::new(),
        };
        push(&mut e, "cn", s(cn.as_str()));
        push(&mut e, "sAMAccountName", s(unique(&mut sams, &cn, 256)));
        push(&mut e, "displayName", s(cn.as_str()));
        push(
            &mut e,
            "description",
            s(if security {
                format!("{dept} access group")
            } else {
                format!("{dept} mailing list")
            }),
        );
        push(&mut e, "objectGUID", b(rng.bytes16()));
        push(&mut e, "objectSid", b(sid(1105 + (users + j) as u32)));
        push(
            &mut e,
            "groupType",
            n(if security { -2_147_483_646 } else { 8 }),
        );
        if !security {
            let slug = cn
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>();
            let local = unique(&mut mails, &slug, 64);
            push(&mut e, "mail", s(format!("{local}@contoso.com")));
            push(
                &mut e,
                "proxyAddresses",
                vec![
                    Value::str(format!("SMTP:{local}@contoso.com")),
                    Value::str(format!("smtp:{local}@contoso.mail.onmicrosoft.com")),
                ],
            );
            push(&mut e, "mailNickname", s(local));
        }
        let mut members: Vec<Value> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        if users > 0 {
            let count = rng.below(users.min(25) + 1);
            for _ in 0..count {
                let u = rng.below(users);
                if seen.insert(u) {
                    members.push(r(&people[u].dn));
                }
            }
        }
        if j > 0 && rng.chance(25) {
            let mut nested: HashSet<usize> = HashSet::new();
            for _ in 0..1 + rng.below(2) {
                let g = rng.below(j);
                if nested.insert(g) {
                    members.push(r(&group_dns[g]));
                }
            }
        }
        if !members.is_empty() {
            push(&mut e, "member", members);
        }
        group_dns.push(dn);
        out.push(e);
    }

    // Contacts.
    let mut contact_cns: HashSet<String> = HashSet::new();
    for _ in 0..users.div_ceil(50) {
        let given = rng.pick(GIVEN);
        let sn = rng.pick(SURNAMES);
        let cn = unique(&mut contact_cns, &format!("{given} {sn} (Fabrikam)"), 64);
        let mut e = Entry {
            dn: format!("CN={},{CONTACTS_OU}", escape_rdn_value(&cn)),
            object_classes: ["top", "person", "organizationalPerson", "contact"]
                .iter()
                .map(|c| c.to_string())
                .collect(),
            attrs: Vec::new(),
        };
        let local = unique(
            &mut mails,
            &format!("{}.{}", ascii_slug(given), ascii_slug(sn)),
            64,
        );
        let mail = format!("{local}@fabrikam.com");
        push(&mut e, "cn", s(cn.as_str()));
        push(&mut e, "givenName", s(given));
        push(&mut e, "sn", s(sn));
        push(&mut e, "displayName", s(format!("{given} {sn} (Fabrikam)")));
        push(&mut e, "company", s("Fabrikam"));
        push(&mut e, "objectGUID", b(rng.bytes16()));
        push(&mut e, "mail", s(mail.as_str()));
        push(&mut e, "proxyAddresses", s(format!("SMTP:{mail}")));
        push(&mut e, "targetAddress", s(format!("SMTP:{mail}")));
        push(&mut e, "mailNickname", s(format!("{local}-fabrikam")));
        out.push(e);
    }

    // Built-in and service accounts.
    let system = |rng: &mut Rng, cn: &str, rid: u32, uac: i64, description: &str| {
        let mut e = user_entry(format!("CN={cn},{SYSTEM_CONTAINER}"));
        push(&mut e, "cn", s(cn));
        push(&mut e, "sAMAccountName", s(cn));
        push(&mut e, "description", s(description));
        push(&mut e, "objectGUID", b(rng.bytes16()));
        push(&mut e, "objectSid", b(sid(rid)));
        push(&mut e, "userAccountControl", n(uac));
        push(&mut e, "pwdLastSet", n(filetime(rng)));
        e
    };
    let mut admin = system(
        &mut rng,
        "Administrator",
        500,
        66048,
        "Built-in account for administering the computer/domain",
    );
    push(
        &mut admin,
        "isCriticalSystemObject",
        vec![Value::Bool(true)],
    );
    out.push(admin);
    let mut krbtgt = system(
        &mut rng,
        "krbtgt",
        502,
        514,
        "Key Distribution Center Service Account",
    );
    push(
        &mut krbtgt,
        "isCriticalSystemObject",
        vec![Value::Bool(true)],
    );
    out.push(krbtgt);
    let install = uuid::Uuid::from_bytes_le(rng.bytes16());
    let msol = format!("MSOL_{}", &format!("{:x}", install.simple())[..12]);
    out.push(system(
        &mut rng,
        &msol,
        1103,
        66048,
        &format!(
            "Account created by Microsoft Azure Active Directory Connect with installation \
             identifier {install} running on computer AADC01 configured to synchronize to tenant \
             contoso.onmicrosoft.com. This account must have directory replication permissions \
             in the local Active Directory and write permission on certain attributes to enable \
             Hybrid Deployment."
        ),
    ));

    // Replication conflicts: copies of users created on two domain controllers at once.
    let mut conflicted: HashSet<usize> = HashSet::new();
    let mut rid = 1105 + (users + groups) as u32;
    while conflicted.len() < users.min(2) {
        let i = rng.below(users);
        if !conflicted.insert(i) {
            continue;
        }
        let p = &people[i];
        let guid = rng.bytes16();
        let text = uuid::Uuid::from_bytes_le(guid).hyphenated().to_string();
        let mut e = user_entry(format!(
            "CN={}\\0ACNF:{text},{USERS_OU}",
            escape_rdn_value(&p.cn)
        ));
        push(&mut e, "cn", s(format!("{}\nCNF:{text}", p.cn)));
        push(&mut e, "givenName", s(p.given));
        push(&mut e, "sn", s(p.sn));
        push(&mut e, "displayName", s(format!("{} {}", p.given, p.sn)));
        push(
            &mut e,
            "sAMAccountName",
            s(format!("$DUPLICATE-{:x}", p.rid)),
        );
        push(&mut e, "objectGUID", b(guid));
        push(&mut e, "objectSid", b(sid(rid)));
        push(&mut e, "userAccountControl", n(512));
        push(
            &mut e,
            "description",
            s(format!("Conflict copy of {}", p.sam)),
        );
        out.push(e);
        rid += 1;
    }
    out
}

/// The LDIF text of [`ad_entries`], with a comment saying how it was made.
pub fn generate(users: usize, groups: usize, seed: u64) -> String {
    let entries = ad_entries(users, groups, seed);
    let body = ldif::write_ldif(&entries);
    let rest = body.strip_prefix("version: 1\n").unwrap_or(&body);
    format!(
        "version: 1\n# A synthetic Active Directory export of contoso.com, made by\n\
         # idflow gen ad --users {users} --groups {groups} --seed {seed}\n{rest}"
    )
}
