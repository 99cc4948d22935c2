//! The generated contacts: the CSV the server imports, and the same rows already
//! normalized as COPY input for the reference (contacts, contact_tags,
//! contact_attributes). Deterministic: the same rows every run.

use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

pub const TAGS: [&str; 10] = [
    "VIP",
    "Lead",
    "Customer",
    "Newsletter",
    "Wholesale",
    "Retail",
    "Returning",
    "Prospect",
    "Partner",
    "Dormant",
];
/// CSV column, attribute key.
pub const ATTRIBUTES: [&str; 3] = ["City", "Email", "Plan"];

const FIRST: [&str; 24] = [
    "Aarav", "Vivaan", "Aditya", "Vihaan", "Arjun", "Sai", "Reyansh", "Ayaan", "Krishna", "Ishaan",
    "Ananya", "Diya", "Aadhya", "Saanvi", "Pari", "Anika", "Navya", "Myra", "Asha", "Priya",
    "Rahul", "Neha", "Rohan", "Kavya",
];
const LAST: [&str; 20] = [
    "Sharma",
    "Verma",
    "Gupta",
    "Singh",
    "Kumar",
    "Patel",
    "Reddy",
    "Iyer",
    "Nair",
    "Menon",
    "Das",
    "Bose",
    "Chatterjee",
    "Joshi",
    "Kulkarni",
    "Desai",
    "Mehta",
    "Shah",
    "Rao",
    "Khan",
];
const CITIES: [&str; 16] = [
    "Mumbai",
    "Delhi",
    "Bengaluru",
    "Hyderabad",
    "Ahmedabad",
    "Chennai",
    "Kolkata",
    "Pune",
    "Jaipur",
    "Surat",
    "Lucknow",
    "Kanpur",
    "Nagpur",
    "Indore",
    "Bhopal",
    "Kochi",
];
const PLANS: [&str; 4] = ["Free", "Basic", "Pro", "Enterprise"];

/// Ids the normalized rows refer to (from the project the server created).
pub struct Ids {
    pub project_id: String,
    /// In the order of [`TAGS`].
    pub tag_ids: Vec<String>,
    /// In the order of [`ATTRIBUTES`].
    pub attribute_ids: Vec<String>,
}

pub struct Generated {
    pub csv: Vec<u8>,
    pub contacts_file: PathBuf,
    pub tags_file: PathBuf,
    pub attributes_file: PathBuf,
    pub copy_bytes: u64,
}

/// splitmix64: small, fast and good enough for spreading values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A unique Indian mobile number for row `i` (< 10^9): `9` and nine digits. The
/// multiplier is coprime with 10^9, so the mapping is a permutation.
fn phone(i: u64) -> u64 {
    9_000_000_000 + (i.wrapping_mul(387_420_489).wrapping_add(123_457) % 1_000_000_000)
}

pub fn generate(rows: u64, ids: &Ids, dir: &Path) -> anyhow::Result<Generated> {
    let contacts_file = dir.join("ref_contacts.csv");
    let tags_file = dir.join("ref_contact_tags.csv");
    let attributes_file = dir.join("ref_contact_attributes.csv");
    let mut contacts = BufWriter::with_capacity(1 << 20, std::fs::File::create(&contacts_file)?);
    let mut tags = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tags_file)?);
    let mut attributes =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(&attributes_file)?);

    let mut csv = Vec::with_capacity(rows as usize * 96);
    csv.extend_from_slice(b"Name,Phone,Tags,City,Email,Plan\n");
    let mut rng = Rng(0x5EED);
    let now = "2026-11-25 00:00:00+00";
    let project = &ids.project_id;
    // The import records its job as `added_by`; any id of the same size will do here.
    let job = uuid::Uuid::now_v7();
    for i in 0..rows {
        let first = FIRST[rng.below(FIRST.len())];
        let last = LAST[rng.below(LAST.len())];
        let number = phone(i);
        let a = rng.below(TAGS.len());
        let b = (a + 1 + rng.below(TAGS.len() - 1)) % TAGS.len();
        let city = CITIES[rng.below(CITIES.len())];
        let plan = PLANS[rng.below(PLANS.len())];
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            i
        );
        writeln!(
            csv,
            "{first} {last},{number},{} | {},{city},{email},{plan}",
            TAGS[a], TAGS[b]
        )?;

        // The same row as the import stores it (column order as in \copy's list).
        let id = uuid::Uuid::now_v7();
        writeln!(
            contacts,
            "{id},{project},{first} {last},+91{number},,IMPORT,,t,{now},IMPORT,f,HANDLED_BY_ASSISTANT,,{now},{now}"
        )?;
        for t in [a, b] {
            writeln!(tags, "{id},{},{project},{now},{job}", ids.tag_ids[t])?;
        }
        for (attribute, value) in ids.attribute_ids.iter().zip([city, email.as_str(), plan]) {
            writeln!(attributes, "{id},{attribute},{project},{value}")?;
        }
    }
    let mut copy_bytes = 0;
    for w in [contacts, tags, attributes] {
        let file = w.into_inner().map_err(|e| e.into_error())?;
        copy_bytes += file.metadata()?.len();
    }
    Ok(Generated {
        csv,
        contacts_file,
        tags_file,
        attributes_file,
        copy_bytes,
    })
}

/// COPY's column lists, matching the files' order.
pub const CONTACT_COLUMNS: &str = "id, project_id, name, phone, bsuid, source, \
    first_message_tag_id, opted_in, opted_in_at, opted_in_source, incoming_blocked, state, \
    last_active_at, created_at, updated_at";
pub const TAG_COLUMNS: &str = "contact_id, tag_id, project_id, added_at, added_by";
pub const ATTRIBUTE_COLUMNS: &str = "contact_id, attribute_id, project_id, value";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_unique_indian_mobiles() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            let p = phone(i);
            assert!((9_000_000_000..10_000_000_000).contains(&p));
            assert!(seen.insert(p));
        }
    }

    #[test]
    fn rows_match_the_reference_files() {
        let dir = std::env::temp_dir().join(format!("parley-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ids = Ids {
            project_id: uuid::Uuid::nil().to_string(),
            tag_ids: (0..TAGS.len()).map(|i| format!("t{i}")).collect(),
            attribute_ids: ATTRIBUTES.iter().map(|a| a.to_string()).collect(),
        };
        let g = generate(1_000, &ids, &dir).unwrap();
        let text = String::from_utf8(g.csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1_001);
        assert!(lines[1].split(',').nth(2).unwrap().contains(" | "));
        let count = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(count(&g.contacts_file), 1_000);
        assert_eq!(count(&g.tags_file), 2_000);
        assert_eq!(count(&g.attributes_file), 3_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
