//! Billing: each project's currency and subscription, invoices, the credit wallet and its
//! ledger, Meta's pricing eras and rate cards (as data with effective dates), the pricing
//! conversations opened by outbound messages, each message's charge, and the monthly
//! free-tier counter.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Currency,
    DefaultCountry,
}

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    ProjectId,
    Plan,
    BillingInterval,
    Status,
    PeriodStart,
    PeriodEnd,
    CancelAtPeriodEnd,
    CancelledAt,
    ExpiredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PlanPrices {
    Table,
    Plan,
    BillingInterval,
    Currency,
    PriceMicros,
}

#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    ProjectId,
    Number,
    Kind,
    Plan,
    BillingInterval,
    PeriodStart,
    PeriodEnd,
    AmountMicros,
    CreditsMicros,
    Currency,
    Status,
    IssuedAt,
    DueAt,
    PaidAt,
    PaymentReference,
    VoidedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum Wallets {
    Table,
    ProjectId,
    Currency,
    BalanceMicros,
    LowBalanceMicros,
    LastSeq,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WalletEntries {
    Table,
    ProjectId,
    Seq,
    Kind,
    AmountMicros,
    BalanceAfterMicros,
    MessageId,
    InvoiceId,
    CampaignId,
    Note,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PricingEras {
    Table,
    Name,
    EffectiveFrom,
    Model,
    FreeServicePerMonth,
    ServiceFree,
    UtilityFreeInServiceWindow,
    FreeEntryPointHours,
    ConversationHours,
}

#[derive(DeriveIden)]
enum RateCards {
    Table,
    Era,
    EffectiveFrom,
    Country,
    Category,
    Currency,
    PriceMicros,
}

#[derive(DeriveIden)]
enum ExchangeRates {
    Table,
    FromCurrency,
    ToCurrency,
    EffectiveFrom,
    RateMicros,
}

#[derive(DeriveIden)]
enum PricingConversations {
    Table,
    Id,
    ProjectId,
    ContactId,
    Category,
    OpenedAt,
    ExpiresAt,
    Era,
    Country,
    Billable,
    FreeReason,
    AmountMicros,
    Currency,
    MessageId,
    VoidedAt,
}

#[derive(DeriveIden)]
enum MessageCharges {
    Table,
    MessageId,
    ProjectId,
    ContactId,
    CampaignId,
    ChargedAt,
    Era,
    Model,
    Category,
    Country,
    ConversationId,
    OpenedConversation,
    Billable,
    FreeReason,
    UsesFreeTier,
    AmountMicros,
    Currency,
    WalletSeq,
    RefundedAt,
    MetaPricing,
}

#[derive(DeriveIden)]
enum FreeTierUsage {
    Table,
    ProjectId,
    Month,
    Used,
}

/// Meta's pricing eras (SPEC section 7). A new era is a new row.
const ERAS: &[(&str, &str, &str, i32, bool, bool)] = &[
    // name, effective from (UTC), model, free service per month, service free, utility free in CSW
    ("cbp_2023", "2023-06-01", "CONVERSATION", 1000, false, false),
    (
        "cbp_free_service_2024",
        "2024-11-01",
        "CONVERSATION",
        0,
        true,
        false,
    ),
    ("pmp_2025", "2025-07-01", "PER_MESSAGE", 0, true, true),
];

/// The illustrative rate card (`fixtures/rate-cards.csv`), so that a new installation can
/// price messages; operators replace it with `parley import-rate-card FILE`.
const RATE_CARD: &str = include_str!("rate_card_seed.csv");

/// Plan prices per interval and currency (micros).
const PLAN_PRICES: &[(&str, &str, &str, i64)] = &[
    ("BASIC", "MONTHLY", "INR", 2_500_000_000),
    ("BASIC", "YEARLY", "INR", 25_000_000_000),
    ("PRO", "MONTHLY", "INR", 5_000_000_000),
    ("PRO", "YEARLY", "INR", 50_000_000_000),
    ("BASIC", "MONTHLY", "USD", 30_000_000),
    ("BASIC", "YEARLY", "USD", 300_000_000),
    ("PRO", "MONTHLY", "USD", 60_000_000),
    ("PRO", "YEARLY", "USD", 600_000_000),
];

/// Illustrative exchange rates for rate-card rows in another currency than the project's.
const EXCHANGE_RATES: &[(&str, &str, &str, i64)] = &[
    ("USD", "INR", "2023-01-01", 83_000_000),
    ("INR", "USD", "2023-01-01", 12_048),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(string_len(Projects::Currency, 3).default("USD"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Projects::Table)
                    .value(Projects::Currency, "INR")
                    .and_where(Expr::col(Projects::DefaultCountry).eq("IN"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(uuid(Subscriptions::ProjectId).primary_key())
                    .col(string_len(Subscriptions::Plan, 16))
                    .col(string_len(Subscriptions::BillingInterval, 16))
                    .col(string_len(Subscriptions::Status, 16))
                    .col(timestamp_with_time_zone(Subscriptions::PeriodStart))
                    .col(timestamp_with_time_zone(Subscriptions::PeriodEnd))
                    .col(boolean(Subscriptions::CancelAtPeriodEnd))
                    .col(timestamp_with_time_zone_null(Subscriptions::CancelledAt))
                    .col(timestamp_with_time_zone_null(Subscriptions::ExpiredAt))
                    .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Subscriptions::Table, Subscriptions::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // The expiry sweep's question: which terms ended before now.
        manager
            .create_index(
                Index::create()
                    .name("subscriptions_status_period_end_idx")
                    .table(Subscriptions::Table)
                    .col(Subscriptions::Status)
                    .col(Subscriptions::PeriodEnd)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlanPrices::Table)
                    .col(string_len(PlanPrices::Plan, 16))
                    .col(string_len(PlanPrices::BillingInterval, 16))
                    .col(string_len(PlanPrices::Currency, 3))
                    .col(big_integer(PlanPrices::PriceMicros))
                    .primary_key(
                        Index::create()
                            .col(PlanPrices::Plan)
                            .col(PlanPrices::BillingInterval)
                            .col(PlanPrices::Currency),
                    )
                    .to_owned(),
            )
            .await?;
        for (plan, interval, currency, price) in PLAN_PRICES {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(PlanPrices::Table)
                        .columns([
                            PlanPrices::Plan,
                            PlanPrices::BillingInterval,
                            PlanPrices::Currency,
                            PlanPrices::PriceMicros,
                        ])
                        .values_panic([
                            (*plan).into(),
                            (*interval).into(),
                            (*currency).into(),
                            (*price).into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Invoices::Table)
                    .col(uuid(Invoices::Id).primary_key())
                    .col(uuid(Invoices::ProjectId))
                    .col(string_len(Invoices::Number, 32).unique_key())
                    .col(string_len(Invoices::Kind, 16))
                    .col(string_len_null(Invoices::Plan, 16))
                    .col(string_len_null(Invoices::BillingInterval, 16))
                    .col(timestamp_with_time_zone_null(Invoices::PeriodStart))
                    .col(timestamp_with_time_zone_null(Invoices::PeriodEnd))
                    .col(big_integer(Invoices::AmountMicros))
                    .col(big_integer(Invoices::CreditsMicros))
                    .col(string_len(Invoices::Currency, 3))
                    .col(string_len(Invoices::Status, 16))
                    .col(timestamp_with_time_zone(Invoices::IssuedAt))
                    .col(timestamp_with_time_zone(Invoices::DueAt))
                    .col(timestamp_with_time_zone_null(Invoices::PaidAt))
                    .col(string_len_null(Invoices::PaymentReference, 200))
                    .col(timestamp_with_time_zone_null(Invoices::VoidedAt))
                    .col(uuid_null(Invoices::CreatedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Invoices::Table, Invoices::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("invoices_project_issued_idx")
                    .table(Invoices::Table)
                    .col(Invoices::ProjectId)
                    .col(Invoices::IssuedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Wallets::Table)
                    .col(uuid(Wallets::ProjectId).primary_key())
                    .col(string_len(Wallets::Currency, 3))
                    .col(big_integer(Wallets::BalanceMicros))
                    .col(big_integer(Wallets::LowBalanceMicros))
                    .col(big_integer(Wallets::LastSeq))
                    .col(timestamp_with_time_zone(Wallets::UpdatedAt))
                    .check(Expr::col(Wallets::BalanceMicros).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Wallets::Table, Wallets::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WalletEntries::Table)
                    .col(uuid(WalletEntries::ProjectId))
                    .col(big_integer(WalletEntries::Seq))
                    .col(string_len(WalletEntries::Kind, 16))
                    .col(big_integer(WalletEntries::AmountMicros))
                    .col(big_integer(WalletEntries::BalanceAfterMicros))
                    .col(uuid_null(WalletEntries::MessageId))
                    .col(uuid_null(WalletEntries::InvoiceId))
                    .col(uuid_null(WalletEntries::CampaignId))
                    .col(text_null(WalletEntries::Note))
                    .col(uuid_null(WalletEntries::CreatedBy))
                    .col(timestamp_with_time_zone(WalletEntries::CreatedAt))
                    .check(Expr::col(WalletEntries::BalanceAfterMicros).gte(0))
                    .primary_key(
                        Index::create()
                            .col(WalletEntries::ProjectId)
                            .col(WalletEntries::Seq),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PricingEras::Table)
                    .col(string_len(PricingEras::Name, 64).primary_key())
                    .col(string_len(PricingEras::EffectiveFrom, 10))
                    .col(string_len(PricingEras::Model, 16))
                    .col(integer(PricingEras::FreeServicePerMonth))
                    .col(boolean(PricingEras::ServiceFree))
                    .col(boolean(PricingEras::UtilityFreeInServiceWindow))
                    .col(integer(PricingEras::FreeEntryPointHours))
                    .col(integer(PricingEras::ConversationHours))
                    .to_owned(),
            )
            .await?;
        for (name, from, model, free, service_free, utility_free) in ERAS {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(PricingEras::Table)
                        .columns([
                            PricingEras::Name,
                            PricingEras::EffectiveFrom,
                            PricingEras::Model,
                            PricingEras::FreeServicePerMonth,
                            PricingEras::ServiceFree,
                            PricingEras::UtilityFreeInServiceWindow,
                            PricingEras::FreeEntryPointHours,
                            PricingEras::ConversationHours,
                        ])
                        .values_panic([
                            (*name).into(),
                            (*from).into(),
                            (*model).into(),
                            (*free).into(),
                            (*service_free).into(),
                            (*utility_free).into(),
                            72.into(),
                            24.into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RateCards::Table)
                    .col(string_len(RateCards::Era, 64))
                    .col(string_len(RateCards::EffectiveFrom, 10))
                    .col(string_len(RateCards::Country, 2))
                    .col(string_len(RateCards::Category, 16))
                    .col(string_len(RateCards::Currency, 3))
                    .col(big_integer(RateCards::PriceMicros))
                    .primary_key(
                        Index::create()
                            .col(RateCards::EffectiveFrom)
                            .col(RateCards::Country)
                            .col(RateCards::Category)
                            .col(RateCards::Currency),
                    )
                    .to_owned(),
            )
            .await?;
        for line in RATE_CARD.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            let [era, from, country, category, currency, price] = cols.as_slice() else {
                return Err(DbErr::Custom(format!("bad rate card seed line {line:?}")));
            };
            let micros = seed_micros(price)
                .ok_or_else(|| DbErr::Custom(format!("bad price in seed line {line:?}")))?;
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(RateCards::Table)
                        .columns([
                            RateCards::Era,
                            RateCards::EffectiveFrom,
                            RateCards::Country,
                            RateCards::Category,
                            RateCards::Currency,
                            RateCards::PriceMicros,
                        ])
                        .values_panic([
                            (*era).into(),
                            (*from).into(),
                            (*country).into(),
                            category.to_ascii_uppercase().into(),
                            (*currency).into(),
                            micros.into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(ExchangeRates::Table)
                    .col(string_len(ExchangeRates::FromCurrency, 3))
                    .col(string_len(ExchangeRates::ToCurrency, 3))
                    .col(string_len(ExchangeRates::EffectiveFrom, 10))
                    .col(big_integer(ExchangeRates::RateMicros))
                    .primary_key(
                        Index::create()
                            .col(ExchangeRates::FromCurrency)
                            .col(ExchangeRates::ToCurrency)
                            .col(ExchangeRates::EffectiveFrom),
                    )
                    .to_owned(),
            )
            .await?;
        for (from, to, since, rate) in EXCHANGE_RATES {
            manager
                .exec_stmt(
                    Query::insert()
                        .into_table(ExchangeRates::Table)
                        .columns([
                            ExchangeRates::FromCurrency,
                            ExchangeRates::ToCurrency,
                            ExchangeRates::EffectiveFrom,
                            ExchangeRates::RateMicros,
                        ])
                        .values_panic([
                            (*from).into(),
                            (*to).into(),
                            (*since).into(),
                            (*rate).into(),
                        ])
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(PricingConversations::Table)
                    .col(uuid(PricingConversations::Id).primary_key())
                    .col(uuid(PricingConversations::ProjectId))
                    .col(uuid(PricingConversations::ContactId))
                    .col(string_len(PricingConversations::Category, 32))
                    .col(timestamp_with_time_zone(PricingConversations::OpenedAt))
                    .col(timestamp_with_time_zone(PricingConversations::ExpiresAt))
                    .col(string_len(PricingConversations::Era, 64))
                    .col(string_len(PricingConversations::Country, 2))
                    .col(boolean(PricingConversations::Billable))
                    .col(string_len_null(PricingConversations::FreeReason, 32))
                    .col(big_integer(PricingConversations::AmountMicros))
                    .col(string_len(PricingConversations::Currency, 3))
                    .col(uuid(PricingConversations::MessageId))
                    .col(timestamp_with_time_zone_null(
                        PricingConversations::VoidedAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("pricing_conversations_contact_idx")
                    .table(PricingConversations::Table)
                    .col(PricingConversations::ContactId)
                    .col(PricingConversations::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageCharges::Table)
                    .col(uuid(MessageCharges::MessageId).primary_key())
                    .col(uuid(MessageCharges::ProjectId))
                    .col(uuid(MessageCharges::ContactId))
                    .col(uuid_null(MessageCharges::CampaignId))
                    .col(timestamp_with_time_zone(MessageCharges::ChargedAt))
                    .col(string_len(MessageCharges::Era, 64))
                    .col(string_len(MessageCharges::Model, 16))
                    .col(string_len(MessageCharges::Category, 32))
                    .col(string_len(MessageCharges::Country, 2))
                    .col(uuid_null(MessageCharges::ConversationId))
                    .col(boolean(MessageCharges::OpenedConversation))
                    .col(boolean(MessageCharges::Billable))
                    .col(string_len_null(MessageCharges::FreeReason, 32))
                    .col(boolean(MessageCharges::UsesFreeTier))
                    .col(big_integer(MessageCharges::AmountMicros))
                    .col(string_len(MessageCharges::Currency, 3))
                    .col(big_integer_null(MessageCharges::WalletSeq))
                    .col(timestamp_with_time_zone_null(MessageCharges::RefundedAt))
                    .col(text_null(MessageCharges::MetaPricing))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("message_charges_project_time_idx")
                    .table(MessageCharges::Table)
                    .col(MessageCharges::ProjectId)
                    .col(MessageCharges::ChargedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FreeTierUsage::Table)
                    .col(uuid(FreeTierUsage::ProjectId))
                    .col(string_len(FreeTierUsage::Month, 7))
                    .col(integer(FreeTierUsage::Used))
                    .primary_key(
                        Index::create()
                            .col(FreeTierUsage::ProjectId)
                            .col(FreeTierUsage::Month),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FreeTierUsage::Table.into_iden(),
            MessageCharges::Table.into_iden(),
            PricingConversations::Table.into_iden(),
            ExchangeRates::Table.into_iden(),
            RateCards::Table.into_iden(),
            PricingEras::Table.into_iden(),
            WalletEntries::Table.into_iden(),
            Wallets::Table.into_iden(),
            Invoices::Table.into_iden(),
            PlanPrices::Table.into_iden(),
            Subscriptions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(Projects::Currency)
                    .to_owned(),
            )
            .await
    }
}

/// "0.7265" → 726500 (at most six decimals).
fn seed_micros(price: &str) -> Option<i64> {
    let (whole, fraction) = price.split_once('.').unwrap_or((price, ""));
    if fraction.len() > 6 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}
