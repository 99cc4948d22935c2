//! The billing reports as CSV for finance (SPEC §7 "exportable as CSV").
//!
//! Amounts are decimal strings of the currency's units converted exactly from micros
//! (726500 → "0.7265"): never through a float, which would print 0.726499999… for some.
//! Text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! or a tab or carriage return, OWASP's list) get a leading `'`; numbers are left alone, as
//! "-1.5" is a number to the spreadsheet too.

use crate::billing::{
    CampaignCost, PricingDifference, ReconciliationRow, UsageRow, WalletEntry, WalletStatement,
};

const MICROS_PER_UNIT: u64 = 1_000_000;

/// `micros` in units: 726500 → "0.7265", -1500000 → "-1.5", 2000000 → "2".
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let abs = micros.unsigned_abs();
    let (units, frac) = (abs / MICROS_PER_UNIT, abs % MICROS_PER_UNIT);
    if frac == 0 {
        return format!("{sign}{units}");
    }
    let digits = format!("{frac:06}");
    format!("{sign}{units}.{}", digits.trim_end_matches('0'))
}

/// A plain decimal number (optional sign, digits, optional fraction).
fn is_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// A text cell, defused against formula injection.
pub fn text_cell(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_number(cell) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn opt_id(id: Option<uuid::Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// Writes a header and rows into CSV text.
fn write<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to memory only fails on a broken invariant of the csv crate.
    out.write_record(header).expect("CSV to memory");
    for row in rows {
        out.write_record(&row).expect("CSV to memory");
    }
    let bytes = out.into_inner().expect("CSV to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells is UTF-8")
}

pub fn usage_csv(rows: &[UsageRow]) -> String {
    write(
        [
            "period",
            "model",
            "category",
            "country",
            "currency",
            "messages",
            "billable_messages",
            "free_messages",
            "conversations",
            "billable_conversations",
            "free_conversations",
            "amount",
        ],
        rows.iter().map(|r| {
            [
                r.period.to_string(),
                text_cell(&r.model),
                text_cell(&r.category),
                text_cell(&r.country),
                text_cell(&r.currency),
                r.messages.to_string(),
                r.billable_messages.to_string(),
                r.free_messages.to_string(),
                r.conversations.to_string(),
                r.billable_conversations.to_string(),
                r.free_conversations.to_string(),
                format_micros(r.amount_micros),
            ]
        }),
    )
}

pub fn campaign_costs_csv(rows: &[CampaignCost]) -> String {
    write(
        [
            "campaign_id",
            "currency",
            "messages",
            "billable_messages",
            "amount",
        ],
        rows.iter().map(|r| {
            [
                r.campaign_id.to_string(),
                text_cell(&r.currency),
                r.messages.to_string(),
                r.billable_messages.to_string(),
                format_micros(r.amount_micros),
            ]
        }),
    )
}

/// One table: an `OPENING` line, the `ENTRY` lines by seq, a `TOTAL` line per entry kind
/// (with its number of entries) and a `CLOSING` line; balances in `balance_after`.
pub fn wallet_statement_csv(statement: &WalletStatement) -> String {
    let balance = |line: &str, micros: i64| {
        let mut row: [String; 11] = Default::default();
        row[0] = line.to_owned();
        row[5] = format_micros(micros);
        row[6] = text_cell(&statement.currency);
        row
    };
    let entry = |e: &WalletEntry| {
        [
            "ENTRY".to_owned(),
            e.seq.to_string(),
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            text_cell(&e.entry_kind),
            format_micros(e.amount_micros),
            format_micros(e.balance_after_micros),
            text_cell(&e.currency),
            opt_id(e.message_id),
            opt_id(e.invoice_id),
            opt_id(e.campaign_id),
            String::new(),
        ]
    };
    let totals = statement.totals.iter().map(|t| {
        let mut row: [String; 11] = Default::default();
        row[0] = "TOTAL".to_owned();
        row[3] = text_cell(&t.entry_kind);
        row[4] = format_micros(t.amount_micros);
        row[6] = text_cell(&statement.currency);
        row[10] = t.entries.to_string();
        row
    });
    let rows = std::iter::once(balance("OPENING", statement.opening_balance_micros))
        .chain(statement.entries.iter().map(entry))
        .chain(totals)
        .chain(std::iter::once(balance(
            "CLOSING",
            statement.closing_balance_micros,
        )));
    write(
        [
            "line",
            "seq",
            "at",
            "entry_kind",
            "amount",
            "balance_after",
            "currency",
            "message_id",
            "invoice_id",
            "campaign_id",
            "entries",
        ],
        rows,
    )
}

pub fn reconciliation_csv(rows: &[ReconciliationRow]) -> String {
    write(
        ["outcome", "currency", "messages", "amount"],
        rows.iter().map(|r| {
            [
                r.outcome.as_str().to_owned(),
                text_cell(&r.currency),
                r.messages.to_string(),
                format_micros(r.amount_micros),
            ]
        }),
    )
}

pub fn pricing_differences_csv(rows: &[PricingDifference]) -> String {
    let opt = |s: &Option<String>| s.as_deref().map(text_cell).unwrap_or_default();
    write(
        [
            "message_id",
            "outcome",
            "category",
            "billable",
            "amount",
            "currency",
            "meta_category",
            "meta_model",
            "meta_billable",
            "meta_type",
        ],
        rows.iter().map(|r| {
            [
                r.message_id.to_string(),
                r.outcome.as_str().to_owned(),
                text_cell(&r.category),
                r.billable.to_string(),
                format_micros(r.amount_micros),
                text_cell(&r.currency),
                opt(&r.meta_category),
                opt(&r.meta_model),
                r.meta_billable.map(|b| b.to_string()).unwrap_or_default(),
                opt(&r.meta_type),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::billing::{ReconciliationOutcome, WalletKindTotal};

    #[test]
    fn micros_convert_exactly() {
        assert_eq!(format_micros(726_500), "0.7265");
        assert_eq!(format_micros(-1_500_000), "-1.5");
        assert_eq!(format_micros(2_000_000), "2");
        assert_eq!(format_micros(0), "0");
        assert_eq!(format_micros(1), "0.000001");
        assert_eq!(format_micros(-7), "-0.000007");
        assert_eq!(format_micros(i64::MIN), "-9223372036854.775808");
        assert_eq!(format_micros(i64::MAX), "9223372036854.775807");
    }

    #[test]
    fn text_that_looks_like_a_formula_is_defused() {
        assert_eq!(text_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text_cell("+1 555"), "'+1 555");
        assert_eq!(text_cell("-cmd"), "'-cmd");
        assert_eq!(text_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text_cell("\tx"), "'\tx");
        // Numbers stay numbers; ordinary text is untouched.
        assert_eq!(text_cell("-1.5"), "-1.5");
        assert_eq!(text_cell("+3"), "+3");
        assert_eq!(text_cell("-"), "'-");
        assert_eq!(text_cell("-1."), "'-1.");
        assert_eq!(text_cell("MARKETING"), "MARKETING");
        assert_eq!(text_cell(""), "");
    }

    #[test]
    fn usage_csv_has_a_header_and_exact_amounts() {
        let rows = [UsageRow {
            period: NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(),
            model: "PER_MESSAGE".into(),
            category: "=cmd|' /C calc'!A0".into(),
            country: "IN".into(),
            currency: "INR".into(),
            messages: 3,
            billable_messages: 2,
            free_messages: 1,
            conversations: 0,
            billable_conversations: 0,
            free_conversations: 0,
            amount_micros: -1_500_000,
        }];
        assert_eq!(
            usage_csv(&rows),
            "period,model,category,country,currency,messages,billable_messages,free_messages,\
             conversations,billable_conversations,free_conversations,amount\n\
             2025-07-01,PER_MESSAGE,'=cmd|' /C calc'!A0,IN,INR,3,2,1,0,0,0,-1.5\n"
        );
        assert_eq!(
            usage_csv(&[]).lines().count(),
            1,
            "a header even when empty"
        );
    }

    #[test]
    fn wallet_csv_is_one_table() {
        let message = Uuid::from_u128(7);
        let statement = WalletStatement {
            currency: "INR".into(),
            opening_balance_micros: 10_000_000,
            closing_balance_micros: 9_273_500,
            totals: vec![WalletKindTotal {
                entry_kind: "CHARGE".into(),
                entries: 1,
                amount_micros: -726_500,
            }],
            entries: vec![WalletEntry {
                seq: 4,
                at: Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 5).unwrap(),
                entry_kind: "CHARGE".into(),
                amount_micros: -726_500,
                balance_after_micros: 9_273_500,
                currency: "INR".into(),
                message_id: Some(message),
                invoice_id: None,
                campaign_id: None,
            }],
        };
        assert_eq!(
            wallet_statement_csv(&statement),
            format!(
                "line,seq,at,entry_kind,amount,balance_after,currency,message_id,invoice_id,\
                 campaign_id,entries\n\
                 OPENING,,,,,10,INR,,,,\n\
                 ENTRY,4,2025-07-01T00:00:05Z,CHARGE,-0.7265,9.2735,INR,{message},,,\n\
                 TOTAL,,,CHARGE,-0.7265,,INR,,,,1\n\
                 CLOSING,,,,,9.2735,INR,,,,\n"
            )
        );
    }

    #[test]
    fn reconciliation_and_differences_csv() {
        let rows = [ReconciliationRow {
            outcome: ReconciliationOutcome::NotPricedByMeta,
            currency: "INR".into(),
            messages: 2,
            amount_micros: 1_453_000,
        }];
        assert_eq!(
            reconciliation_csv(&rows),
            "outcome,currency,messages,amount\nNOT_PRICED_BY_META,INR,2,1.453\n"
        );
        let id = Uuid::from_u128(1);
        let diff = PricingDifference {
            message_id: id,
            outcome: ReconciliationOutcome::BillableDiffers,
            category: "UTILITY".into(),
            billable: true,
            amount_micros: 150_000,
            currency: "INR".into(),
            meta_category: Some("UTILITY".into()),
            meta_model: Some("PMP".into()),
            meta_billable: Some(false),
            meta_type: Some("free_customer_service".into()),
        };
        assert_eq!(
            pricing_differences_csv(&[diff]),
            format!(
                "message_id,outcome,category,billable,amount,currency,meta_category,meta_model,\
                 meta_billable,meta_type\n\
                 {id},BILLABLE_DIFFERS,UTILITY,true,0.15,INR,UTILITY,PMP,false,\
                 free_customer_service\n"
            )
        );
        let campaign = CampaignCost {
            campaign_id: id,
            currency: "INR".into(),
            messages: 1,
            billable_messages: 1,
            amount_micros: 726_500,
        };
        assert_eq!(
            campaign_costs_csv(&[campaign]),
            format!(
                "campaign_id,currency,messages,billable_messages,amount\n{id},INR,1,1,0.7265\n"
            )
        );
    }
}
